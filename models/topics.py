"""MQTT and Kafka topic names, built and parsed by pure functions.

MQTT layout (device side)::

    safecity/v1/<kind>/<device_id>/<message>

    kind      message       payload
    --------  ------------  ---------------------------------------------
    camera    plate-read    PlateRead (JSON, optional base64 JPEG snapshot)
    camera    frame         CameraFrame (JSON, base64 JPEG/PNG; low-rate frames for analytics)
    hotel     registration  HotelRegistration (JSON)
    gas       reading       GasReading (JSON)
    <any>     status        DeviceStatus (JSON, retained; last will = offline)

Alerts leave the pipeline on ``safecity/v1/alerts/<alert_type>/<device_id>/<alert_id>`` (retained,
one topic per alert, emptied when it closes: a wall display that connects late sees exactly the open
alerts) and components publish their
counters on ``safecity/v1/system/<component>/stats``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

PREFIX = "safecity/v1"
DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class DeviceKind(enum.StrEnum):
    CAMERA = "camera"
    HOTEL = "hotel"
    GAS = "gas"


class MessageKind(enum.StrEnum):
    """One per event kind that flows through the pipeline (and one Kafka topic each)."""

    PLATE_READ = "plate-read"
    REGISTRATION = "registration"
    GAS_READING = "reading"
    FRAME = "frame"
    STATUS = "status"


# Which messages each device kind may publish.
ALLOWED: dict[DeviceKind, frozenset[MessageKind]] = {
    DeviceKind.CAMERA: frozenset({MessageKind.PLATE_READ, MessageKind.FRAME, MessageKind.STATUS}),
    DeviceKind.HOTEL: frozenset({MessageKind.REGISTRATION, MessageKind.STATUS}),
    DeviceKind.GAS: frozenset({MessageKind.GAS_READING, MessageKind.STATUS}),
}

# Events carrying personal data (a guest's name and ID number): sealed on Kafka (models/sealed.py), kept
# only settings.kafka.personal_retention_h; and the MQTT namespace whose dead letters are sealed too.
PERSONAL_KINDS: frozenset[MessageKind] = frozenset({MessageKind.REGISTRATION})
PERSONAL_DEVICE_KIND = DeviceKind.HOTEL

# Kafka topics: one per event kind, plus alerts and dead letters.
KAFKA_TOPICS: dict[MessageKind, str] = {
    MessageKind.PLATE_READ: "safecity.plate-reads.v1",
    MessageKind.REGISTRATION: "safecity.registrations.v1",
    MessageKind.GAS_READING: "safecity.gas-readings.v1",
    MessageKind.FRAME: "safecity.camera-frames.v1",
    MessageKind.STATUS: "safecity.device-status.v1",
}
#: Kinds whose Kafka records may be packs: one record carrying several events of one partition (a JSON
#: array of them, ``schemas.pack``), so the worker's cost per record is shared. Small, frequent,
#: never sealed: gas readings. Every consumer of their topic reads records through ``schemas.unpack``.
PACKED_KINDS: frozenset[MessageKind] = frozenset({MessageKind.GAS_READING})
#: Urgent topics: an event that may raise an alarm now (``ingest.validate.Urgency``: a gas reading at an
#: alarming level) goes to its kind's urgent topic instead of the kind's topic, as a record of its own,
#: keyed by its device like every record of the kind's topic and so on the same partition number
#: (the topics are co-partitioned: one worker has both). At the worker it never waits behind the
#: backlog of routine readings. Read like the kind's topic (``schemas.unpack`` takes a lone event too).
KAFKA_URGENT: dict[MessageKind, str] = {MessageKind.GAS_READING: "safecity.gas-readings-urgent.v1"}
KAFKA_ALERTS = "safecity.alerts.v1"
KAFKA_DEAD_LETTERS = "safecity.dead-letters.v1"
KAFKA_GAS_TICKS = "safecity.gas-silence-checks.v1"  # per sensor, co-partitioned with gas readings
KAFKA_HOTEL_TICKS = "safecity.hotel-silence-checks.v1"  # per hotel, co-partitioned with registrations
KAFKA_SITE_ALARMS = "safecity.gas-site-alarms.v1"  # gas alarm transitions keyed by site
KAFKA_COOLDOWN_SWEEP = "safecity.watch-cooldown-sweep.v1"  # expired cooldown keys, keyed by their place
KAFKA_SNAPSHOTS = "safecity.camera-snapshots.v1"  # plate-read snapshots as frames, keyed by camera
KAFKA_MOTION = "safecity.camera-motion.v1"  # motion-start / motion-end events, keyed by camera
KAFKA_WATCHLIST_VEHICLES = "safecity.watchlist-vehicles.v1"  # compacted, keyed by entry id
KAFKA_WATCHLIST_PERSONS = "safecity.watchlist-persons.v1"  # compacted, keyed by entry id
KAFKA_METRICS = "safecity.metrics.v1"  # metric points on their way to InfluxDB (the metrics writer)
KAFKA_AUDIT = "safecity.audit.v1"  # who did what to watch lists and alerts: one hash chain, on partition 0
KAFKA_AUDIT_REQUESTS = "safecity.audit-requests.v1"  # what tools ask the alert service to chain into it

#: What ingest subscribes to: every device kind's whole namespace (not alerts/ or system/, our
#: outputs), so a topic of any shape below it is judged (accepted or dead-lettered), never unseen.
INGEST_SUBSCRIPTIONS = tuple(f"{PREFIX}/{kind.value}/#" for kind in DeviceKind)
ALERTS_SUBSCRIPTION = f"{PREFIX}/alerts/#"


class TopicError(ValueError):
    """A topic that does not follow the layout; ``code`` is a stable reason code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class DeviceTopic:
    kind: DeviceKind
    device_id: str
    message: MessageKind

    def __str__(self) -> str:
        return device_topic(self.kind, self.device_id, self.message)


def _check_device_id(device_id: str) -> str:
    if not DEVICE_ID_RE.match(device_id):
        raise TopicError("bad-device-id", f"device id {device_id[:70]!r} is not 1-64 of [A-Za-z0-9_.-]")
    return device_id


def device_topic(kind: DeviceKind | str, device_id: str, message: MessageKind | str) -> str:
    kind, message = DeviceKind(kind), MessageKind(message)
    _check_device_id(device_id)
    if message not in ALLOWED[kind]:
        raise TopicError("bad-message", f"a {kind} device does not publish {message!r}")
    return f"{PREFIX}/{kind}/{device_id}/{message}"


def parse_device_topic(topic: str) -> DeviceTopic:
    """Parse ``safecity/v1/<kind>/<device_id>/<message>``; raise TopicError with a reason code."""
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != PREFIX:
        raise TopicError("bad-topic", f"topic {topic[:120]!r} is not {PREFIX}/<kind>/<device_id>/<message>")
    _, _, kind_s, device_id, message_s = parts
    try:
        kind = DeviceKind(kind_s)
    except ValueError:
        raise TopicError("unknown-kind", f"unknown device kind {kind_s[:40]!r}") from None
    try:
        message = MessageKind(message_s)
    except ValueError:
        raise TopicError("unknown-message", f"unknown message {message_s[:40]!r}") from None
    _check_device_id(device_id)
    if message not in ALLOWED[kind]:
        raise TopicError("bad-message", f"a {kind} device does not publish {message}")
    return DeviceTopic(kind, device_id, message)


def alert_topic(alert_type: str, device_id: str, alert_id: str) -> str:
    """One retained topic per alert: ``safecity/v1/alerts/<type>/<device_id>/<alert id>`` (the alert
    id with any MQTT wildcard or level separator replaced by ``_``)."""
    key = re.sub(r"[/+#\x00]", "_", alert_id)
    return f"{PREFIX}/alerts/{alert_type}/{_check_device_id(device_id)}/{key}"


def stats_topic(component: str) -> str:
    return f"{PREFIX}/system/{component}/stats"


def kafka_topic(message: MessageKind | str) -> str:
    return KAFKA_TOPICS[MessageKind(message)]
