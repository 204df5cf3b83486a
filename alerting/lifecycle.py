"""The alert lifecycle, as pure code: from rule transitions and operator actions to records.

::

    firing ──ack──▶ acknowledged ──┬─ cleared    (its cause cleared: conditions)
       │                           ├─ resolved   (an operator closed it)
       └───────────────────────────┴─ confirmed / rejected (leads only, by an operator)

A record is one *episode* of an alert id: it opens on a firing transition, counts repeated
firings (``count``, first and last seen), keeps the latest evidence, and keeps every step with
its actor and time. A firing after the episode closed opens a new episode. Illegal steps raise
``IllegalStep`` with a message for a person. Replays are recognised and change nothing: a rule
transition by its (episode, time), an operator action by its ``action_id``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import msgspec

from models import alerts as alert_types
from models.alerts import Closing
from models.registry import DeviceEntry
from models.schemas import Alert, AlertState, DetailValue, Severity

RECENT_MAX = 32  # firing times remembered per episode to recognise a replayed transition


class Status(enum.StrEnum):
    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"
    CLEARED = "cleared"  # its cause cleared
    RESOLVED = "resolved"  # closed by an operator
    CONFIRMED = "confirmed"  # a lead verified by a person
    REJECTED = "rejected"  # a lead found to be a false match


OPEN = frozenset({Status.FIRING, Status.ACKNOWLEDGED})


class ActionKind(enum.StrEnum):
    ACK = "ack"
    ASSIGN = "assign"
    COMMENT = "comment"
    RESOLVE = "resolve"
    CONFIRM = "confirm"
    REJECT = "reject"


#: The change a step makes, as the router and the KPIs see it.
class Change(enum.StrEnum):
    OPENED = "opened"
    OCCURRED = "occurred"  # fired again within the open episode
    ACKNOWLEDGED = "acknowledged"
    ASSIGNED = "assigned"
    COMMENTED = "commented"
    CLEARED = "cleared"
    RESOLVED = "resolved"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"


CLOSING_CHANGES = frozenset({Change.CLEARED, Change.RESOLVED, Change.CONFIRMED, Change.REJECTED})
_ACTION_STATUS = {ActionKind.RESOLVE: Status.RESOLVED, ActionKind.CONFIRM: Status.CONFIRMED,
                  ActionKind.REJECT: Status.REJECTED}
_ACTION_CHANGE = {ActionKind.ACK: Change.ACKNOWLEDGED, ActionKind.ASSIGN: Change.ASSIGNED,
                  ActionKind.COMMENT: Change.COMMENTED, ActionKind.RESOLVE: Change.RESOLVED,
                  ActionKind.CONFIRM: Change.CONFIRMED, ActionKind.REJECT: Change.REJECTED}
SYSTEM = "system"  # the actor of rule transitions


class AlertAction(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """An operator's action on an alert, attributed to an authenticated user."""

    action: ActionKind
    alert_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    by: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    at: Annotated[datetime, msgspec.Meta(tz=True)]
    action_id: Annotated[str, msgspec.Meta(max_length=64)] = ""
    assignee: Annotated[str, msgspec.Meta(max_length=64)] = ""
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


class Step(msgspec.Struct, frozen=True, omit_defaults=True, kw_only=True):
    change: Change
    by: str
    at: datetime
    comment: str = ""
    assignee: str = ""
    action_id: str = ""


class Place(msgspec.Struct, frozen=True, omit_defaults=True):
    """Where the alert's device is, from the device registry."""

    district: str = ""
    site: str = ""
    grid: str = ""
    lat: float | None = None
    lon: float | None = None


def place_of(device_id: str, registry: dict[str, DeviceEntry]) -> Place:
    """Where a device is; a site alarm's device is the site itself (district from its sensors)."""
    entry = registry.get(device_id)
    if entry is not None:
        return Place(entry.district or "", entry.site or "", entry.grid or "", entry.lat, entry.lon)
    at_site = [e for e in registry.values() if e.site == device_id]
    if at_site:
        return Place(at_site[0].district or "", device_id, "", None, None)
    return Place()


class AlertRecord(msgspec.Struct, frozen=True, omit_defaults=True, kw_only=True):
    alert_id: str
    type: str
    severity: Severity
    device_id: str
    since: datetime  # the episode's start (from the rule)
    status: Status
    first_seen: datetime
    last_seen: datetime
    count: int
    summary: str
    details: dict[str, DetailValue] = {}  # the evidence (latest)
    place: Place = Place()
    assignee: str = ""
    acknowledged_by: str = ""
    acknowledged_at: datetime | None = None
    closed_at: datetime | None = None
    closed_by: str = ""
    version: int = 1  # bumped by every step: consumers apply a record once
    steps: tuple[Step, ...] = ()
    recent: tuple[str, ...] = ()  # firing times of this episode already counted

    @property
    def open(self) -> bool:
        return self.status in OPEN

    @property
    def closing(self) -> Closing:
        return alert_types.alert_type(self.type).closing

    @property
    def site(self) -> str:
        return self.place.site or self.device_id


def iso(value: datetime) -> str:
    """Times on the wire as msgspec writes them everywhere else: ISO 8601, UTC as ``Z``."""
    return value.isoformat().replace("+00:00", "Z")


class IllegalStep(ValueError):
    """An operator action the alert's state does not allow; the message is for a person."""


@dataclass(frozen=True, slots=True)
class Outcome:
    record: AlertRecord | None
    change: Change | None  # None: nothing changed (a replay, or a stale transition)


def _step(record: AlertRecord, step: Step, **changes) -> AlertRecord:
    return msgspec.structs.replace(record, steps=(*record.steps, step), version=record.version + 1, **changes)


def on_transition(record: AlertRecord | None, alert: Alert, place: Place = Place()) -> Outcome:
    """Apply a rule's transition (firing or cleared) to the alert's current record."""
    stamp = alert.at.isoformat()
    if alert.state is AlertState.FIRING:
        if record is None or (not record.open and alert.since > record.since):
            new = AlertRecord(
                alert_id=alert.alert_id, type=alert.type, severity=alert.severity, device_id=alert.device_id,
                since=alert.since, status=Status.FIRING, first_seen=alert.at, last_seen=alert.at, count=1,
                summary=alert.summary, details=dict(alert.details), place=place,
                steps=(Step(change=Change.OPENED, by=SYSTEM, at=alert.at),), recent=(stamp,))
            return Outcome(new, Change.OPENED)
        if not record.open or stamp in record.recent:
            return Outcome(record, None)  # a replay, or a late firing of a closed episode
        newer = alert.at >= record.last_seen
        updated = msgspec.structs.replace(
            record, count=record.count + 1, version=record.version + 1,
            first_seen=min(record.first_seen, alert.at), last_seen=max(record.last_seen, alert.at),
            summary=alert.summary if newer else record.summary,
            details=dict(alert.details) if newer else record.details,
            severity=max(record.severity, alert.severity, key=lambda s: -alert_types.SEVERITY_RANK[s]),
            recent=(*record.recent, stamp)[-RECENT_MAX:])
        return Outcome(updated, Change.OCCURRED)
    # cleared: only an open episode that started at or before this clear's episode
    if record is None or not record.open or alert.since < record.since:
        return Outcome(record, None)
    return Outcome(_step(record, Step(change=Change.CLEARED, by=SYSTEM, at=alert.at, comment=alert.summary[:300]),
                         status=Status.CLEARED, closed_at=alert.at, closed_by=SYSTEM), Change.CLEARED)


def apply_action(record: AlertRecord | None, action: AlertAction) -> Outcome:
    """Apply an operator's action; raise IllegalStep when the alert's state does not allow it."""
    if record is None:
        raise IllegalStep(f"no alert {action.alert_id!r}")
    if action.action_id and any(s.action_id == action.action_id for s in record.steps):
        return Outcome(record, None)  # the same action again (a replay)
    kind = action.action
    what = f"{record.type} {record.alert_id} is {record.status.value}"
    if kind in (ActionKind.CONFIRM, ActionKind.REJECT) and record.closing is not Closing.LEAD:
        raise IllegalStep(f"{kind.value} applies to watch-list leads; {record.type} is a {record.closing.value} "
                          "(acknowledge it; it clears when its cause does, or resolve it)")
    if kind is not ActionKind.COMMENT and not record.open:
        raise IllegalStep(f"{what} since {record.closed_at:%Y-%m-%d %H:%M:%S}: nothing to {kind.value}")
    if kind is ActionKind.ACK and record.status is Status.ACKNOWLEDGED:
        raise IllegalStep(f"{what} (by {record.acknowledged_by})")
    if kind is ActionKind.ASSIGN and not action.assignee:
        raise IllegalStep("assign needs an assignee (a person or a unit)")
    if kind is ActionKind.REJECT and not action.reason.strip():
        raise IllegalStep("reject needs a reason (why the match was wrong)")
    if kind is ActionKind.COMMENT and not action.reason.strip():
        raise IllegalStep("a comment needs text")
    step = Step(change=_ACTION_CHANGE[kind], by=action.by, at=action.at, comment=action.reason,
                assignee=action.assignee, action_id=action.action_id)
    changes: dict = {}
    if kind is ActionKind.ACK:
        changes = {"status": Status.ACKNOWLEDGED, "acknowledged_by": action.by, "acknowledged_at": action.at}
    elif kind is ActionKind.ASSIGN:
        changes = {"assignee": action.assignee}
    elif kind in _ACTION_STATUS:
        changes = {"status": _ACTION_STATUS[kind], "closed_at": action.at, "closed_by": action.by}
    return Outcome(_step(record, step, **changes), step.change)
