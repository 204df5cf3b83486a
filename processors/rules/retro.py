"""Retro-hunt: new watch-list entries against the reads and registrations of the recent past.
Each (entry, place, subject) gives one alert saying when and where the subject was seen. Only
events that arrived before the entry was listed count; later ones are live matching's."""

from __future__ import annotations

from collections.abc import Iterable

from models import schemas
from models.schemas import Alert, HotelRegistration, PlateRead, SchemaError
from models.topics import MessageKind
from models.watchlist import PersonEntry, VehicleEntry
from processors.rules import watch_alerts
from processors.rules.watchlist import PersonIndex, VehicleIndex


def hunt(entries: list[VehicleEntry] | list[PersonEntry], events: Iterable[bytes], kind: MessageKind) -> list[Alert]:
    # alert id -> [latest event, match, subject, first sighting, count]
    seen: dict[str, list] = {}

    listed = {e.entry_id: e.listed_at for e in entries}

    def record(event, m, subject: str, at) -> None:
        cutoff = listed.get(m.entry_id)
        if cutoff is not None and event.ingested_at is not None and event.ingested_at >= cutoff:
            return  # arrived after the entry was listed: live matching has seen it
        make = watch_alerts.vehicle_alert if isinstance(event, PlateRead) else watch_alerts.person_alert
        alert_id = make(event, m, subject, retro=True).alert_id
        s = seen.setdefault(alert_id, [event, m, subject, at, 0])
        s[3], s[4] = min(s[3], at), s[4] + 1
        latest = s[0].captured_at if isinstance(s[0], PlateRead) else s[0].checkin_at
        if at >= latest:
            s[0], s[1] = event, m

    if kind is MessageKind.PLATE_READ:
        vindex = VehicleIndex([e for e in entries if isinstance(e, VehicleEntry)])
        for raw in events:
            read = _decode(kind, raw)
            if isinstance(read, PlateRead):
                for m in vindex.match(read.plate, read.captured_at):
                    if m.alert:
                        record(read, m, vindex.entries[m.entry_id].plate, read.captured_at)
    else:
        pindex = PersonIndex([e for e in entries if isinstance(e, PersonEntry)])
        for raw in events:
            reg = _decode(kind, raw)
            if isinstance(reg, HotelRegistration):
                for m in pindex.match(reg.id_number, reg.guest_name, reg.birth_date, reg.nationality, reg.checkin_at):
                    if m.alert:
                        record(reg, m, watch_alerts.person_subject(reg), reg.checkin_at)
    alerts = []
    for event, m, subject, first, count in seen.values():
        make = watch_alerts.vehicle_alert if isinstance(event, PlateRead) else watch_alerts.person_alert
        alerts.append(make(event, m, subject, retro=True, first_seen=first, sightings=count))
    return alerts


def _decode(kind: MessageKind, raw: bytes):
    try:
        return schemas.decode_event(kind, raw)
    except SchemaError:
        return None
