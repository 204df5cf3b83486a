"""Retro-hunt: new watch-list entries against the reads and registrations of the recent past.
Each (entry, place, subject) gives one alert saying when and where the subject was seen. Only
events that arrived before the entry was listed count; later ones are live matching's."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import msgspec

from models import schemas
from models.schemas import Alert, HotelRegistration, PlateColour, PlateRead, SchemaError
from models.topics import MessageKind
from models.watchlist import PersonEntry, VehicleEntry
from processors.rules import watch_alerts
from models.privacy import Pseudonyms
from processors.rules.watchlist import PersonIndex, VehicleIndex


class Hunt:
    """A retro-hunt fed in chunks (``feed``), so the look-back window is never held in memory: only
    one chunk of raw events and one summary per hit. Snapshots are skipped, never decoded."""

    def __init__(self, entries: list[VehicleEntry] | list[PersonEntry], kind: MessageKind,
                 pseudonyms: Pseudonyms) -> None:
        self.kind, self.pseudonyms = kind, pseudonyms
        self.listed = {e.entry_id: e.listed_at for e in entries}
        self.seen: dict[str, list] = {}  # alert id -> [latest event, match, subject, first sighting, count]
        self.events = 0
        if kind is MessageKind.PLATE_READ:
            self.vindex = VehicleIndex([e for e in entries if isinstance(e, VehicleEntry)])
        else:
            self.pindex = PersonIndex([e for e in entries if isinstance(e, PersonEntry)])

    def _record(self, event, m, subject: str, at) -> None:
        cutoff = self.listed.get(m.entry_id)
        if cutoff is not None and event.ingested_at is not None and event.ingested_at >= cutoff:
            return  # arrived after the entry was listed: live matching has seen it
        alert_id = self._alert(event, m, subject, retro=True).alert_id
        s = self.seen.setdefault(alert_id, [event, m, subject, at, 0])
        s[3], s[4] = min(s[3], at), s[4] + 1
        latest = s[0].captured_at if isinstance(s[0], PlateRead) else s[0].checkin_at
        if at >= latest:
            s[0], s[1] = event, m

    def feed(self, events: Iterable[bytes]) -> None:
        for raw in events:
            self.events += 1
            if self.kind is MessageKind.PLATE_READ:
                read = _read_without_snapshot(raw)
                if read is not None:
                    for m in self.vindex.match(read.plate, read.captured_at):
                        if m.alert:
                            self._record(read, m, self.vindex.entries[m.entry_id].plate, read.captured_at)
            else:
                reg = _decode(self.kind, raw)
                if isinstance(reg, HotelRegistration):
                    for m in self.pindex.match(reg.id_number, reg.guest_name, reg.birth_date, reg.nationality,
                                               reg.checkin_at):
                        if m.alert:
                            self._record(reg, m, watch_alerts.person_subject(reg), reg.checkin_at)

    def _alert(self, event, m, subject: str, **kw) -> Alert:
        sid = self.pseudonyms.of(subject)
        if isinstance(event, PlateRead):
            return watch_alerts.vehicle_alert(event, m, subject, sid, **kw)
        return watch_alerts.person_alert(event, m, sid, **kw)

    def alerts(self) -> list[Alert]:
        return [self._alert(event, m, subject, retro=True, first_seen=first, sightings=count)
                for event, m, subject, first, count in self.seen.values()]


def hunt(entries: list[VehicleEntry] | list[PersonEntry], events: Iterable[bytes], kind: MessageKind,
         pseudonyms: Pseudonyms) -> list[Alert]:
    h = Hunt(entries, kind, pseudonyms)
    h.feed(events)
    return h.alerts()


class _ReadNoSnapshot(msgspec.Struct):
    """A stored plate read, decoded without its snapshot (skipped, not base64-decoded)."""

    read_id: str
    checkpoint_id: str
    camera_id: str
    lane: int
    plate: str
    plate_colour: PlateColour
    confidence: float
    captured_at: datetime
    ingested_at: datetime | None = None


_read_decoder = msgspec.json.Decoder(_ReadNoSnapshot)


def _read_without_snapshot(raw: bytes) -> PlateRead | None:
    try:
        r = _read_decoder.decode(raw)
        return PlateRead(read_id=r.read_id, checkpoint_id=r.checkpoint_id, camera_id=r.camera_id, lane=r.lane,
                         plate=r.plate, plate_colour=r.plate_colour, confidence=r.confidence,
                         captured_at=r.captured_at, ingested_at=r.ingested_at)
    except (msgspec.DecodeError, msgspec.ValidationError, TypeError, ValueError):
        return None


def _decode(kind: MessageKind, raw: bytes):
    try:
        return schemas.decode_event(kind, raw)
    except SchemaError:
        return None
