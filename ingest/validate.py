"""The ingest decision, as a pure function: (MQTT topic, payload, now) -> Accepted | Rejected."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec

from models import schemas, topics
from models.registry import DeviceEntry
from models.schemas import DeadLetter, Event, SchemaError
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


@dataclass(frozen=True, slots=True)
class Rejected:
    dead_letter: DeadLetter

    @property
    def key(self) -> bytes:
        return self.dead_letter.source.encode()


def validate(mqtt_topic: str, payload: bytes, now: datetime,
             registry: Callable[[str], DeviceEntry | None] | None = None,
             max_ahead: timedelta = MAX_CLOCK_AHEAD, max_age: timedelta = MAX_EVENT_AGE) -> Accepted | Rejected:
    """Never raises: anything that cannot become a valid event becomes a dead letter.

    With a ``registry`` lookup, devices it does not list (or lists as another kind) are rejected."""

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
        return Accepted(topic.message, topics.kafka_topic(topic.message), topic.device_id.encode(),
                        schemas.encode(event), event)
    except Exception as exc:  # noqa: BLE001 - the stage must never crash on input
        return reject("internal-error", f"{type(exc).__name__} while validating")
