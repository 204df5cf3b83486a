"""Message schemas: declared once, validated at every boundary.

Frozen msgspec structs, decoded strictly from JSON (unknown fields are errors, times must carry
a time zone). ``decode(kind, raw)`` is the one entry point the boundaries use; it raises
``SchemaError`` with a stable reason code and a message that names fields, never values, so
personal data cannot leak into dead-letter reasons or logs.
"""

from __future__ import annotations

import enum
import re
from datetime import date, datetime
from typing import Annotated, Any

import msgspec

from models.alerts import Severity
from models.topics import MessageKind

__all__ = ["Severity"]  # re-exported: severity is declared with the alert types (models/alerts.py)

AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
DeviceId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
EventId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]

#: Largest JPEG snapshot accepted inside a plate read (decoded bytes).
MAX_SNAPSHOT_BYTES = 512 * 1024


class Struct(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    """Base for every message: immutable, strict, compact on the wire; plain data, never in a
    reference cycle, so not tracked by the cyclic garbage collector (a worker keeps alerts in every
    sensor's state: processors/rules/gas.py)."""


# --------------------------------------------------------------------------- enums
class PlateColour(enum.StrEnum):
    BLUE = "blue"
    YELLOW = "yellow"
    GREEN = "green"  # new-energy, small
    YELLOW_GREEN = "yellow-green"  # new-energy, large
    WHITE = "white"
    BLACK = "black"


class IdType(enum.StrEnum):
    RESIDENT_ID = "resident-id"  # GB 11643 18-digit number
    PASSPORT = "passport"
    HK_MACAO_PERMIT = "hk-macao-permit"
    TAIWAN_PERMIT = "taiwan-permit"
    OTHER = "other"


class GasType(enum.StrEnum):
    COMBUSTIBLE = "combustible"
    CO = "co"


class GasUnit(enum.StrEnum):
    LEL = "%LEL"
    PPM = "ppm"


GAS_UNITS = {GasType.COMBUSTIBLE: GasUnit.LEL, GasType.CO: GasUnit.PPM}


class DeviceState(enum.StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class AlertState(enum.StrEnum):
    FIRING = "firing"
    CLEARED = "cleared"


# --------------------------------------------------------------------------- device events
class PlateRead(Struct, kw_only=True):
    """A vehicle plate read at a city-entrance checkpoint (published by the checkpoint)."""

    read_id: EventId
    checkpoint_id: DeviceId
    camera_id: DeviceId
    lane: Annotated[int, msgspec.Meta(ge=1, le=32)]
    plate: Annotated[str, msgspec.Meta(min_length=1, max_length=16)]
    plate_colour: PlateColour
    confidence: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
    captured_at: AwareDatetime
    #: JPEG bytes, base64 in JSON; at most MAX_SNAPSHOT_BYTES once decoded.
    snapshot_jpeg: Annotated[bytes, msgspec.Meta(max_length=MAX_SNAPSHOT_BYTES)] | None = None
    ingested_at: AwareDatetime | None = None

    @property
    def device_id(self) -> str:
        return self.checkpoint_id

    @property
    def event_time(self) -> datetime:
        return self.captured_at


class HotelRegistration(Struct, kw_only=True):
    """A real-name guest registration uploaded by a hotel's property system."""

    registration_id: EventId
    hotel_id: DeviceId
    guest_name: ShortText
    id_type: IdType
    id_number: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    nationality: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]  # ISO 3166-1 alpha-3
    birth_date: date
    room: Annotated[str, msgspec.Meta(min_length=1, max_length=16)]
    checkin_at: AwareDatetime
    ingested_at: AwareDatetime | None = None

    @property
    def device_id(self) -> str:
        return self.hotel_id

    @property
    def event_time(self) -> datetime:
        return self.checkin_at


class GasReading(Struct, kw_only=True):
    """One gas sensor sample. ``value`` may be null: the sensor could not measure (a fault)."""

    sensor_id: DeviceId
    gas: GasType
    value: float | None
    unit: GasUnit
    measured_at: AwareDatetime
    battery: Annotated[float, msgspec.Meta(ge=0.0, le=100.0)] | None = None  # percent
    seq: Annotated[int, msgspec.Meta(ge=0)] | None = None
    ingested_at: AwareDatetime | None = None

    def __post_init__(self) -> None:
        if GAS_UNITS[self.gas] is not self.unit:
            raise ValueError(f"unit must be {GAS_UNITS[self.gas].value} for gas {self.gas.value}")

    @property
    def device_id(self) -> str:
        return self.sensor_id

    @property
    def event_time(self) -> datetime:
        return self.measured_at


class CameraFrame(Struct, kw_only=True):
    """A frame from a street or checkpoint camera, published at a low rate for image analytics."""

    camera_id: DeviceId
    seq: Annotated[int, msgspec.Meta(ge=0)]
    captured_at: AwareDatetime
    #: JPEG or PNG bytes, base64 in JSON; at most MAX_SNAPSHOT_BYTES once decoded.
    image: Annotated[bytes, msgspec.Meta(max_length=MAX_SNAPSHOT_BYTES)]
    checkpoint_id: DeviceId | None = None  # set when the frame is a checkpoint's plate-read snapshot
    ingested_at: AwareDatetime | None = None

    @property
    def device_id(self) -> str:
        return self.camera_id

    @property
    def event_time(self) -> datetime:
        return self.captured_at


class MotionEvent(Struct, kw_only=True):
    """Motion started or ended in a camera's view (boxes in frame pixels: x, y, width, height)."""

    camera_id: DeviceId
    state: Annotated[str, msgspec.Meta(pattern=r"^(start|end)$")]
    at: AwareDatetime
    boxes: list[tuple[int, int, int, int]] = []
    area: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.0


class DeviceStatus(Struct, kw_only=True):
    """Retained availability; the device's MQTT last will publishes ``offline``."""

    device_id: DeviceId
    state: DeviceState
    at: AwareDatetime | None = None  # absent in a last will, which is fixed at connect time
    ingested_at: AwareDatetime | None = None

    @property
    def event_time(self) -> datetime | None:
        return self.at


Event = PlateRead | HotelRegistration | GasReading | CameraFrame | DeviceStatus

EVENT_TYPES: dict[MessageKind, type[Event]] = {
    MessageKind.PLATE_READ: PlateRead,
    MessageKind.REGISTRATION: HotelRegistration,
    MessageKind.GAS_READING: GasReading,
    MessageKind.FRAME: CameraFrame,
    MessageKind.STATUS: DeviceStatus,
}


# --------------------------------------------------------------------------- pipeline outputs
DetailValue = str | int | float | bool


class Alert(Struct, kw_only=True):
    """An alert transition. ``alert_id`` is the dedup key (and the Kafka key): one alert per
    subject and cause; ``since`` is when this episode started firing, so (alert_id, state, since)
    names one transition and a replay of it is recognised and not notified twice.

    An alert is a lead for a person to verify, never an instruction to act."""

    alert_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    type: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9-]{1,48}$")]
    severity: Severity
    state: AlertState
    device_id: DeviceId
    since: AwareDatetime
    at: AwareDatetime
    summary: Annotated[str, msgspec.Meta(max_length=300)]
    details: dict[str, DetailValue] = {}


class AuditRecord(Struct, kw_only=True):
    """One entry of the audit trail: who did what, when, to what (never names or ID numbers)."""

    action: Annotated[str, msgspec.Meta(pattern=r"^[a-z-]{1,40}$")]
    by: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    at: AwareDatetime
    target: Annotated[str, msgspec.Meta(max_length=300)]
    sha256: str = ""  # of the imported file
    count: int = 0
    detail: Annotated[str, msgspec.Meta(max_length=500)] = ""
    request_id: str = ""  # the request it was chained from (a repeat of a request is chained once)
    # the chain (alerting/audit.py), set by the one writer of the trail: position, the previous
    # record's mac, and this record's HMAC under the audit key
    seq: int = -1
    prev: str = ""
    mac: str = ""


class DeadLetter(Struct, kw_only=True):
    """An input that could not be processed, kept with its reason (and a bounded raw copy)."""

    stage: Annotated[str, msgspec.Meta(pattern=r"^[a-z-]{1,32}$")]
    reason_code: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9-]{1,48}$")]
    reason: Annotated[str, msgspec.Meta(max_length=500)]
    source: Annotated[str, msgspec.Meta(max_length=300)]  # MQTT topic or Kafka topic
    payload: bytes  # base64 in JSON, at most DEAD_LETTER_PAYLOAD_MAX bytes
    payload_size: Annotated[int, msgspec.Meta(ge=0)]
    truncated: bool
    at: AwareDatetime
    sealed: bool = False  # payload sealed (models/sealed.py): the dead letters of personal data


DEAD_LETTER_PAYLOAD_MAX = 4096


# --------------------------------------------------------------------------- codecs
class SchemaError(ValueError):
    """Input that does not fit its schema; ``code`` is a stable reason code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


_encoder = msgspec.json.Encoder()
_decoders: dict[Any, msgspec.json.Decoder] = {}


def _decoder(cls: Any) -> msgspec.json.Decoder:
    dec = _decoders.get(cls)
    if dec is None:
        dec = _decoders[cls] = msgspec.json.Decoder(cls)
    return dec


def decode_as(cls: type[Struct], raw: bytes | str) -> Any:
    """Decode and validate ``raw`` JSON as ``cls``; raise SchemaError (code, field-only message)."""
    try:
        return _decoder(cls).decode(raw)
    except msgspec.ValidationError as exc:
        return _raise(exc, "schema-invalid")
    except msgspec.DecodeError as exc:
        return _raise(exc, "not-json")


_AT = re.compile(r" - at `(\$[^`]*)`$")
_QUOTED = re.compile(r"'[^']*'|`[^`]*`")
_SCHEMA_WORDS = re.compile(r"^`(str|int|float|bool|null|object|array|bytes|datetime|date|time|uuid|decimal)`$")


def safe_reason(text: str) -> str:
    """A validation message reduced to what the schema says: the constraint and the field path, never
    an input value nor a field name the input made up (a name or ID number can be either). msgspec
    quotes the offending value ('...') in some messages and an unknown field's name in others."""
    m = _AT.search(text)
    path = m.group(1) if m else None
    head = text[: m.start()] if m else text
    if head.startswith("Object contains unknown field"):
        head = "Object contains an unknown field"
    elif head.startswith("Invalid enum value"):
        head = "Invalid enum value"
    elif head.startswith("Object missing required field `"):  # a field the schema names
        pass
    else:  # keep the schema's own words (`str`, `int`, ...), drop anything else quoted
        head = _QUOTED.sub(lambda q: q.group(0) if _SCHEMA_WORDS.match(q.group(0)) else "<value>", head)
    if path is not None:  # only the schema's field names and array indexes; dict keys come from the input
        path = re.sub(r"\[(?!\d+\])[^\]]*\]", "[...]", path)
        return f"{head} - at `{path}`"
    return head


def _raise(exc: Exception, code: str) -> Any:
    text = str(exc)
    if code == "not-json" and isinstance(exc, msgspec.DecodeError):
        text = "payload is not valid JSON: " + text.split(":")[0]
    raise SchemaError(code, safe_reason(text)[:400]) from None


def decode_event(message: MessageKind | str, raw: bytes | str) -> Event:
    return decode_as(EVENT_TYPES[MessageKind(message)], raw)


def encode(obj: Any) -> bytes:
    return _encoder.encode(obj)


def pack(values: list[bytes]) -> bytes:
    """Several encoded events (of one kind, for one partition) as one Kafka record: a JSON array of
    them, each element byte for byte the event it was (``topics.PACKED_KINDS``)."""
    return b"[" + b",".join(values) + b"]"


def unpack(raw: bytes) -> list[bytes]:
    """A record's encoded events: a pack's elements in order, or the record itself (one event is a
    JSON object, never an array). Raises SchemaError (``pack-invalid``) for an array that does not
    parse; each element is still to be validated as its event."""
    if raw[:1] != b"[":
        return [raw]
    try:
        return [bytes(element) for element in _decoder(list[msgspec.Raw]).decode(raw)]
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise SchemaError("pack-invalid", f"a pack of events that is not a JSON array: {type(exc).__name__}") \
            from None


def to_builtins(obj: Any) -> Any:
    return msgspec.to_builtins(obj)


def dead_letter(stage: str, code: str, reason: str, source: str, payload: bytes, at: datetime) -> DeadLetter:
    """Build a dead letter that keeps at most DEAD_LETTER_PAYLOAD_MAX bytes of the raw input."""
    return DeadLetter(stage=stage, reason_code=code, reason=reason[:500], source=source[:300],
                      payload=payload[:DEAD_LETTER_PAYLOAD_MAX], payload_size=len(payload),
                      truncated=len(payload) > DEAD_LETTER_PAYLOAD_MAX, at=at)
