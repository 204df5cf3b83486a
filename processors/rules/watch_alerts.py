"""From watch-list matches to alerts: cooldown, severity, and privacy-preserving details.

A hit is a lead for a person to verify. Person alerts carry the registration id, the list entry
id and a truncated hash of the subject, never the name or ID number; operators open the record
in the secured system. Vehicle alerts carry the plate as read and as listed (needed to compare
with the snapshot)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from models.schemas import Alert, AlertState, HotelRegistration, PlateRead, Severity
from models.watchlist import WatchlistMatch

COOLDOWN = timedelta(minutes=10)


def subject_hash(subject: str) -> str:
    return hashlib.sha256(subject.encode()).hexdigest()[:12]


def cooldown_key(entry_id: str, subject: str, place: str) -> str:
    """One wanted plate never suppresses another: the key names the entry, the subject and the place."""
    return f"{entry_id}|{subject_hash(subject)}|{place}"


def severity(m: WatchlistMatch) -> Severity:
    return Severity.CRITICAL if m.priority == 1 else Severity.HIGH if m.priority <= 3 else Severity.WARNING


def in_cooldown(last: datetime | None, at: datetime, cooldown: timedelta = COOLDOWN) -> bool:
    return last is not None and timedelta(0) <= at - last < cooldown


def vehicle_alert(read: PlateRead, m: WatchlistMatch, listed_plate: str, retro: bool = False,
                  first_seen: datetime | None = None, sightings: int = 1) -> Alert:
    subject = subject_hash(listed_plate)
    kind = "watchlist-retro-hit" if retro else "watchlist-vehicle"
    seen = f" (seen {sightings}x in the look-back window)" if retro else ""
    return Alert(
        alert_id=f"{'retro' if retro else 'watch'}:{m.entry_id}:{read.checkpoint_id}:{subject}", type=kind,
        severity=severity(m), state=AlertState.FIRING, device_id=read.checkpoint_id,
        since=first_seen or read.captured_at, at=read.captured_at,
        summary=f"{m.category} {m.entry_id}: {m.kind} plate match at {read.checkpoint_id}{seen}; verify",
        details={"entry_id": m.entry_id, "category": m.category, "match": m.kind, "score": m.score,
                 "explanation": m.explanation, "read_id": read.read_id, "camera_id": read.camera_id,
                 "plate_read": read.plate, "plate_listed": listed_plate, "seen_at": read.captured_at.isoformat(),
                 "sightings": sightings})


def person_alert(reg: HotelRegistration, m: WatchlistMatch, subject: str, retro: bool = False,
                 first_seen: datetime | None = None, sightings: int = 1) -> Alert:
    kind = "watchlist-retro-hit" if retro else "watchlist-person"
    seen = f" (registered {sightings}x in the look-back window)" if retro else ""
    return Alert(
        alert_id=f"{'retro' if retro else 'watch'}:{m.entry_id}:{reg.hotel_id}:{subject_hash(subject)}", type=kind,
        severity=severity(m), state=AlertState.FIRING, device_id=reg.hotel_id,
        since=first_seen or reg.checkin_at, at=reg.checkin_at,
        summary=f"{m.category} {m.entry_id}: {m.kind} match for a guest at {reg.hotel_id}{seen}; verify",
        details={"entry_id": m.entry_id, "category": m.category, "match": m.kind, "score": m.score,
                 "explanation": m.explanation, "registration_id": reg.registration_id,
                 "subject": subject_hash(subject), "seen_at": reg.checkin_at.isoformat(), "sightings": sightings})


def person_subject(reg: HotelRegistration) -> str:
    return f"{reg.id_type.value}:{reg.id_number}"


LEAD_TYPES = frozenset({"watchlist-vehicle", "watchlist-person", "watchlist-retro-hit"})


def closes(alert: Alert, decision: str) -> bool:
    """Only a watch-list lead is closed by a person's decision; a safety alarm (gas, camera, hotel)
    is acknowledged but clears only when its cause does."""
    return alert.type in LEAD_TYPES and alert.state is AlertState.FIRING and decision in ("confirmed", "rejected")


def decided(alert: Alert, decision: str, reason: str, by: str, at: datetime) -> Alert:
    """The operator's decision closes the lead (cleared), keeping its episode."""
    return Alert(alert_id=alert.alert_id, type=alert.type, severity=alert.severity, state=AlertState.CLEARED,
                 device_id=alert.device_id, since=alert.since, at=at,
                 summary=f"{decision} by {by}: {reason}"[:300],
                 details={"decision": decision, "by": by, "match": str(alert.details.get("match", ""))})
