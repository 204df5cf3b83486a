"""From watch-list matches to alerts: cooldown, severity, and privacy-preserving details.

A hit is a lead for a person to verify. Person alerts carry the registration id, the list entry
id and a keyed pseudonym of the subject (``privacy.Pseudonyms``), never the name or ID number;
operators open the record in the secured system. Vehicle alerts carry the plate as read and as listed (needed to compare
with the snapshot)."""

from __future__ import annotations

from datetime import datetime, timedelta

from models import alerts as alert_types
from models.schemas import Alert, AlertState, HotelRegistration, PlateRead, Severity
from models.watchlist import WatchlistMatch

COOLDOWN = timedelta(minutes=10)


def cooldown_key(entry_id: str, subject_id: str, place: str) -> str:
    """One wanted plate never suppresses another: the key names the entry, the subject (by its
    pseudonym) and the place."""
    return f"{entry_id}|{subject_id}|{place}"


def cooldown_place(key: str) -> str:
    """The place a cooldown key names (its last part): its partition key."""
    return key.rsplit("|", 1)[-1]


def severity(m: WatchlistMatch) -> Severity:
    return alert_types.lead_severity(m.priority)


def in_cooldown(last: datetime | None, at: datetime, cooldown: timedelta = COOLDOWN) -> bool:
    """Is a hit at ``at`` a repeat of the one at ``last``? The very read that started the cooldown
    is not (``at == last``): at least once, a worker taking over replays it, and its alert, maybe
    lost with the worker that first sent it, must go again (the alert service recognises a repeat).
    An older read that arrives late is a repeat, as is any within the cooldown after."""
    return last is not None and at != last and at - last < cooldown


def _lead(m: WatchlistMatch, live_type: str, place: str, subject_id: str, at: datetime, retro: bool,
          first_seen: datetime | None, sightings: int, what: str, details: dict) -> Alert:
    """One watch-list lead: live (``watch:``) or from a retro-hunt (``retro:``), keyed by entry,
    place and the subject's pseudonym."""
    seen = f" ({sightings}x in the look-back window)" if retro else ""
    return Alert(
        alert_id=f"{'retro' if retro else 'watch'}:{m.entry_id}:{place}:{subject_id}",
        type="watchlist-retro-hit" if retro else live_type, severity=severity(m), state=AlertState.FIRING,
        device_id=place, since=first_seen or at, at=at,
        summary=f"{m.category} {m.entry_id}: {m.kind} {what} at {place}{seen}; verify",
        details={"entry_id": m.entry_id, "category": m.category, "match": m.kind, "score": m.score,
                 "explanation": m.explanation, "seen_at": at.isoformat(), "sightings": sightings} | details)


def vehicle_alert(read: PlateRead, m: WatchlistMatch, listed_plate: str, subject_id: str, retro: bool = False,
                  first_seen: datetime | None = None, sightings: int = 1) -> Alert:
    return _lead(m, "watchlist-vehicle", read.checkpoint_id, subject_id, read.captured_at, retro, first_seen,
                 sightings, "plate match", {"read_id": read.read_id, "camera_id": read.camera_id,
                                            "plate_read": read.plate, "plate_listed": listed_plate})


def person_alert(reg: HotelRegistration, m: WatchlistMatch, subject_id: str, retro: bool = False,
                 first_seen: datetime | None = None, sightings: int = 1) -> Alert:
    return _lead(m, "watchlist-person", reg.hotel_id, subject_id, reg.checkin_at, retro, first_seen, sightings,
                 "match for a guest", {"registration_id": reg.registration_id, "subject": subject_id})


def person_subject(reg: HotelRegistration) -> str:
    return f"{reg.id_type.value}:{reg.id_number}"


LEAD_TYPES = frozenset({"watchlist-vehicle", "watchlist-person", "watchlist-retro-hit"})
