"""The ingest decision, as a pure function: (MQTT topic, payload, now) -> Accepted | Rejected."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec

from models import schemas, topics
from models.registry import DeviceEntry
from models.schemas import DeadLetter, Event, GasReading, GasType, SchemaError
from models.topics import MessageKind, TopicError

STAGE = "ingest"
#: Largest MQTT payload accepted (a plate read with a 512 KiB snapshot is ~700 KiB of JSON).
MAX_PAYLOAD_BYTES = 1024 * 1024
#: Device clocks may run ahead of ours by this much before a reading counts as bogus (setting).
MAX_CLOCK_AHEAD = timedelta(minutes=10)
#: Events older than this are refused: a clock reset to 1900 is not a reading from 1900 (setting).
MAX_EVENT_AGE = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Accepted:
    kind: MessageKind
    kafka_topic: str
    key: bytes
    value: bytes
    event: Event

    @property
    def urgent(self) -> bool:
        """Bound for its kind's urgent topic (``UrgentDevices``) rather than the kind's own."""
        return self.kafka_topic != topics.KAFKA_TOPICS[self.kind]


@dataclass(frozen=True, slots=True)
class Urgency:
    """Which events are at an alarming level: gas readings at or above ``lel`` (combustible, %LEL) or
    ``co_ppm`` (CO). A bound well under the alarm levels (the gas rules' first level is 25 %LEL): a
    sensor whose registry entry lowers its levels is still caught, and a rising level's readings are
    urgent before it fires. 0 turns a gas off."""

    lel: float = 10.0
    co_ppm: float = 30.0

    def __call__(self, event: Event) -> bool:
        if not isinstance(event, GasReading) or event.value is None:
            return False
        bound = self.lel if event.gas is GasType.COMBUSTIBLE else self.co_ppm
        return 0 < bound <= event.value  # NaN compares false: a fault is never urgent


class UrgentDevices:
    """Which devices' events go to their kind's urgent topic (``topics.KAFKA_URGENT``), past the
    backlog of routine ones: an event at an alarming level (``level``) makes its device urgent, and it
    stays urgent until ``sticky_s`` of ingest time pass without one, every event of it going there. So
    a device's events change topic rarely, and never back within a burst (a device uploading a
    buffered series of a leak and its clearing sends it all one way, in order). At the change to
    urgent, a routine event of it still waiting in the worker's backlog reaches the rules after the
    newer urgent one: the gas rules count it in the metrics only (``rules/gas.replayed``), as any event
    that arrives out of order. (The bridge moves the device's events still waiting in its own packs to
    the urgent topic ahead of the urgent one.) Times are ingest's monotonic clock, in seconds."""

    def __init__(self, level: Callable[[Event], bool], sticky_s: float = 60.0) -> None:
        self.level, self.sticky_s = level, sticky_s
        self.until: dict[str, float] = {}  # device -> when it stops being urgent

    def __call__(self, event: Event, now: float) -> bool:
        device = event.device_id
        if self.level(event):
            self.until[device] = now + self.sticky_s
            return True
        until = self.until.get(device)
        if until is None:
            return False
        if now < until:
            return True
        del self.until[device]
        return False


@dataclass(frozen=True, slots=True)
class Rejected:
    dead_letter: DeadLetter

    @property
    def key(self) -> bytes:
        return self.dead_letter.source.encode()


def validate(mqtt_topic: str, payload: bytes, now: datetime,
             registry: Callable[[str], DeviceEntry | None] | None = None,
             max_ahead: timedelta = MAX_CLOCK_AHEAD, max_age: timedelta = MAX_EVENT_AGE,
             urgent: Callable[[Event], bool] | None = None) -> Accepted | Rejected:
    """Never raises: anything that cannot become a valid event becomes a dead letter.

    With a ``registry`` lookup, devices it does not list (or lists as another kind) are rejected.
    With ``urgent`` (``UrgentDevices`` at ingest's clock), an event it picks goes to its kind's urgent
    topic."""

    def reject(code: str, reason: str) -> Rejected:
        return Rejected(schemas.dead_letter(STAGE, code, reason, mqtt_topic, payload, now))

    try:
        if len(payload) > MAX_PAYLOAD_BYTES:
            return reject("payload-too-large", f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
        try:
            topic = topics.parse_device_topic(mqtt_topic)
        except TopicError as exc:
            return reject(exc.code, str(exc))
        if registry is not None:
            entry = registry(topic.device_id)
            if entry is None:
                return reject("unknown-device", f"device {topic.device_id} is not in the device registry")
            if entry.kind is not topic.kind:
                return reject("device-kind-mismatch", f"device {topic.device_id} is registered as {entry.kind}")
        try:
            event = schemas.decode_event(topic.message, payload)
        except SchemaError as exc:
            return reject(exc.code, f"{topic.message}: {exc}")
        if event.device_id != topic.device_id:
            return reject("device-mismatch", "device id in payload differs from the topic's")
        event_time = event.event_time
        if event_time is not None and event_time - now > max_ahead:
            return reject("event-time-future", f"event time is {event_time - now} ahead of ingest time "
                                               f"(bound {max_ahead})")
        if event_time is not None and now - event_time > max_age:
            return reject("event-time-past", f"event time is {now - event_time} before ingest time "
                                             f"(bound {max_age})")
        event = msgspec.structs.replace(event, ingested_at=now)
        kafka_topic = topics.kafka_topic(topic.message)
        if urgent is not None and topic.message in topics.KAFKA_URGENT and urgent(event):
            kafka_topic = topics.KAFKA_URGENT[topic.message]
        return Accepted(topic.message, kafka_topic, topic.device_id.encode(), schemas.encode(event), event)
    except Exception as exc:  # noqa: BLE001 - the stage must never crash on input
        return reject("internal-error", f"{type(exc).__name__} while validating")
