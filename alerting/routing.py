"""Who hears of what, and when: routing, grouping, silences, reminders and escalation, as pure code.

The router is fed the lifecycle's changes (``on_change``) and the clock (``advance``); it returns
the notifications to send. Its state (one ``RouteState`` per open episode that has a route, one
``GroupState`` per burst window) is plain data the caller persists; ``dirty`` names what changed.
Timers are deadlines in a heap, so advancing the clock costs nothing per idle alert.

- ``info`` alerts are recorded, never notified; an alert no route matches is recorded only.
- A silenced alert is not notified; still open and unacknowledged when the silence ends, it is
  notified then as ``new``. Reminders and escalation steps that fall in a silence wait for its end.
- The first alert of a type at a site goes out at once; more of the same type at that site within
  the policy's ``group_window`` go to that receiver as one ``group`` notification at the window's end.
- Reminders (``remind_every``) and escalation steps (``after``, from the first notification) run
  while the alert is open and unacknowledged; acknowledging stops them.
- Closing (cleared, resolved, confirmed, rejected) sends one ``cleared`` or ``resolved`` to every
  receiver notified about the episode.
- Every notification has a ``key`` that names it uniquely, so a sender can refuse a second copy.
"""

from __future__ import annotations

import enum
import heapq
import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec

from alerting.lifecycle import CLOSING_CHANGES, AlertRecord, Change, iso
from alerting.policy import AlertFacts, Policy, Route
from models import alerts as alert_types
from models.alerts import Severity


class Reason(enum.StrEnum):
    NEW = "new"
    REMINDER = "reminder"
    ESCALATION = "escalation"
    CLEARED = "cleared"
    RESOLVED = "resolved"
    GROUP = "group"


@dataclass(frozen=True, slots=True)
class Notification:
    at: datetime
    receiver: str
    reason: Reason
    records: tuple[AlertRecord, ...]
    key: str  # unique per notification: a second send of the same key is a duplicate

    @property
    def alert_ids(self) -> tuple[str, ...]:
        return tuple(r.alert_id for r in self.records)

    def as_line(self) -> dict:
        """The route-test output line: ``alert_ids`` for a group, ``alert_id`` otherwise."""
        ids = {"alert_ids": list(self.alert_ids)} if self.reason is Reason.GROUP else {"alert_id": self.alert_ids[0]}
        return {"at": iso(self.at), **ids, "receiver": self.receiver, "reason": self.reason.value}


class RouteState(msgspec.Struct, kw_only=True):
    record: AlertRecord
    route: int  # index into the policy's routes
    notified: list[str] = []  # receivers told about this episode, in order
    pending: list[str] = []  # receivers for which the alert waits in a group
    first_notified: datetime | None = None
    reminders: int = 0
    escalations: int = 0
    silenced_until: datetime | None = None
    acked: bool = False


class GroupState(msgspec.Struct, kw_only=True):
    key: str  # receiver|type|site
    window_end: datetime
    pending: list[str] = []  # alert ids


def facts(record: AlertRecord) -> AlertFacts:
    p = record.place
    return AlertFacts(type=record.type, severity=record.severity.value, device=record.device_id, district=p.district,
                      site=record.site, grid=p.grid, route=alert_types.ALERT_TYPES[record.type].route
                      if record.type in alert_types.ALERT_TYPES else "")


def episode(record: AlertRecord) -> str:
    return f"{record.alert_id}@{record.since.isoformat()}"


class Router:
    def __init__(self, policy: Policy, states: dict[str, RouteState] | None = None,
                 groups: dict[str, GroupState] | None = None) -> None:
        self.policy = policy
        self.states: dict[str, RouteState] = dict(states or {})
        self.groups: dict[str, GroupState] = dict(groups or {})
        self.dirty: set[tuple[str, str]] = set()  # ("alert", id) or ("group", key)
        self._heap: list[tuple[datetime, int, str, str]] = []
        self._seq = itertools.count()
        for alert_id in self.states:
            self._schedule(alert_id)
        for key, g in self.groups.items():
            self._push(g.window_end, "group", key)

    # ------------------------------------------------------------------ inputs
    def on_change(self, record: AlertRecord, change: Change, now: datetime) -> list[Notification]:
        out: list[Notification] = []
        if change is Change.OPENED:
            self._drop(record.alert_id)  # a new episode replaces an old one's timers
            route_ix = self._route_index(record)
            if route_ix is None:
                return out
            state = self.states[record.alert_id] = RouteState(record=record, route=route_ix)
            silence = self.policy.silence_for(facts(record), now)
            if silence is not None:
                state.silenced_until = silence.until
            else:
                out += self._notify_new(state, now)
            self._touch(record.alert_id)
            return out
        state = self.states.get(record.alert_id)
        if state is None or state.record.since != record.since:
            return out
        state.record = record
        if change is Change.ACKNOWLEDGED:
            state.acked = True
        elif change in CLOSING_CHANGES:
            reason = Reason.CLEARED if change is Change.CLEARED else Reason.RESOLVED
            out += [self._one(now, rcv, reason, state, 0) for rcv in state.notified]
            for rcv in state.pending:
                g = self.groups.get(self._group_key(rcv, record))
                if g is not None and record.alert_id in g.pending:
                    g.pending.remove(record.alert_id)
                    self.dirty.add(("group", g.key))
            self._drop(record.alert_id)
            return out
        self._touch(record.alert_id)
        return out

    def advance(self, until: datetime) -> list[Notification]:
        """Fire every timer due at or before ``until``, in time order."""
        out: list[Notification] = []
        while self._heap and self._heap[0][0] <= until:
            due, _, kind, key = heapq.heappop(self._heap)
            if kind == "group":
                out += self._flush_group(key, due)
            else:
                out += self._fire(key, due)
        return out

    def next_due(self) -> datetime | None:
        while self._heap:
            due, _, kind, key = self._heap[0]
            if (kind == "group" and key in self.groups and self.groups[key].window_end == due) or \
                    (kind == "alert" and self._due(key) == due):
                return due
            heapq.heappop(self._heap)  # stale
        return None

    # ------------------------------------------------------------------ internals
    def _route_index(self, record: AlertRecord) -> int | None:
        if record.severity is Severity.INFO:
            return None
        f = facts(record)
        return next((i for i, r in enumerate(self.policy.routes) if r.match(f)), None)

    def _route(self, state: RouteState) -> Route:
        return self.policy.routes[state.route]

    def _group_key(self, receiver: str, record: AlertRecord) -> str:
        return f"{receiver}|{record.type}|{record.site}"

    def _one(self, at: datetime, receiver: str, reason: Reason, state: RouteState, n: int) -> Notification:
        return Notification(at, receiver, reason, (state.record,), f"{episode(state.record)}|{receiver}|{reason}|{n}")

    def _notify_new(self, state: RouteState, now: datetime) -> list[Notification]:
        out = []
        window = self.policy.group_window
        for rcv in self._route(state).receivers:
            if rcv in state.notified:
                continue
            key = self._group_key(rcv, state.record)
            group = self.groups.get(key)
            if window > timedelta(0) and group is not None and now < group.window_end:
                group.pending.append(state.record.alert_id)
                state.pending.append(rcv)
                self.dirty.add(("group", key))
                continue
            out.append(self._one(now, rcv, Reason.NEW, state, 0))
            state.notified.append(rcv)
            if window > timedelta(0):
                self.groups[key] = GroupState(key=key, window_end=now + window)
                self.dirty.add(("group", key))
                self._push(now + window, "group", key)
        if out and state.first_notified is None:
            state.first_notified = now
        return out

    def _flush_group(self, key: str, due: datetime) -> list[Notification]:
        group = self.groups.get(key)
        if group is None or group.window_end != due:
            return []
        receiver = key.split("|", 1)[0]
        members = [self.states[a] for a in group.pending if a in self.states]
        self.dirty.add(("group", key))
        if not members:
            del self.groups[key]
            return []
        for state in members:
            state.pending.remove(receiver)
            state.notified.append(receiver)
            state.first_notified = state.first_notified or due
            self._touch(state.record.alert_id)
        # a burst that goes on keeps grouping: a new window starts now
        self.groups[key] = GroupState(key=key, window_end=due + self.policy.group_window)
        self._push(due + self.policy.group_window, "group", key)
        if len(members) == 1:
            return [self._one(due, receiver, Reason.NEW, members[0], 0)]
        records = tuple(s.record for s in members)
        return [Notification(due, receiver, Reason.GROUP, records, f"group|{key}|{due.isoformat()}")]

    def _held(self, state: RouteState, at: datetime) -> datetime:
        """A timer that falls in a silence waits for its end."""
        silence = self.policy.silence_for(facts(state.record), at)
        return silence.until if silence is not None else at

    def _timers(self, state: RouteState) -> list[tuple[datetime, str]]:
        if state.silenced_until is not None:
            return [(state.silenced_until, "unsilence")]
        if state.acked or state.first_notified is None:
            return []
        route, out = self._route(state), []
        if route.remind_every is not None:
            out.append((self._held(state, state.first_notified + route.remind_every * (state.reminders + 1)), "remind"))
        if state.escalations < len(route.escalate):
            out.append((self._held(state, state.first_notified + route.escalate[state.escalations].after), "escalate"))
        return out

    def _due(self, alert_id: str) -> datetime | None:
        state = self.states.get(alert_id)
        timers = self._timers(state) if state is not None else []
        return min(t for t, _ in timers) if timers else None

    def _fire(self, alert_id: str, due: datetime) -> list[Notification]:
        state = self.states.get(alert_id)
        if state is None or self._due(alert_id) != due:
            return []  # stale heap entry
        out: list[Notification] = []
        for at, kind in sorted(self._timers(state)):
            if at != due:
                continue
            if kind == "unsilence":
                state.silenced_until = None
                if not state.acked:
                    out += self._notify_new(state, due)
            elif kind == "remind":
                state.reminders += 1
                out += [self._one(due, rcv, Reason.REMINDER, state, state.reminders)
                        for rcv in self._route(state).receivers if rcv in state.notified]
            else:
                step = self._route(state).escalate[state.escalations]
                state.escalations += 1
                for rcv in step.receivers:
                    out.append(self._one(due, rcv, Reason.ESCALATION, state, state.escalations))
                    if rcv not in state.notified:
                        state.notified.append(rcv)
        self._touch(alert_id)
        return out

    def _push(self, due: datetime, kind: str, key: str) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), kind, key))

    def _schedule(self, alert_id: str) -> None:
        due = self._due(alert_id)
        if due is not None:
            self._push(due, "alert", alert_id)

    def _touch(self, alert_id: str) -> None:
        self.dirty.add(("alert", alert_id))
        self._schedule(alert_id)

    def _drop(self, alert_id: str) -> None:
        if self.states.pop(alert_id, None) is not None:
            self.dirty.add(("alert", alert_id))
