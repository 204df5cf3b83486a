"""The owner of every alert record: applies rule transitions and operator actions through the
lifecycle, runs the router, and saves record, router state and notifications in one transaction.

Synchronous and single-threaded by design (the service runs it on one thread): transitions and
operator actions are applied one at a time, in the order they arrive, so each alert has one owner.
"""

from __future__ import annotations

import logging
from datetime import datetime

from alerting import channels
from alerting.lifecycle import AlertAction, AlertRecord, Outcome, apply_action, on_transition, place_of
from alerting.policy import Policy
from alerting.routing import Notification, Router
from alerting.store import AlertStore, Delivery
from models.schemas import Alert
from safecity.registry import RegistryFile

logger = logging.getLogger(__name__)


class Owner:
    def __init__(self, store: AlertStore, policy: Policy, registry: RegistryFile) -> None:
        self.store, self.policy, self.registry = store, policy, registry
        states, groups = store.load_routing()
        self.router = Router(policy, states, groups)

    def on_alert(self, alert: Alert, now: datetime) -> Outcome:
        self.registry.get(alert.device_id)  # re-reads the registry file when it changed
        outcome = on_transition(self.store.current(alert.alert_id), alert,
                                place_of(alert.device_id, self.registry.entries))
        self._commit(outcome, now)
        return outcome

    def on_action(self, action: AlertAction, now: datetime, dry_run: bool = False) -> Outcome:
        """Raises IllegalStep; with ``dry_run`` only checks."""
        outcome = apply_action(self.store.current(action.alert_id), action)
        if not dry_run:
            self._commit(outcome, now)
        return outcome

    def tick(self, now: datetime) -> int:
        notes = self.router.advance(now)
        if notes or self.router.dirty:
            self._save(None, notes, now)
        return len(notes)

    def next_due(self) -> datetime | None:
        return self.router.next_due()

    def _commit(self, outcome: Outcome, now: datetime) -> None:
        if outcome.change is None or outcome.record is None:
            return
        notes = self.router.advance(now) + self.router.on_change(outcome.record, outcome.change, now)
        self._save(outcome.record, notes, now)
        logger.info("alert %s %s (v%d): %d notification(s)", outcome.record.alert_id, outcome.change.value,
                    outcome.record.version, len(notes))

    def _save(self, record: AlertRecord | None, notes: list[Notification], now: datetime) -> None:
        dirty = {}
        for kind, key in self.router.dirty:
            dirty[(kind, key)] = (self.router.states if kind == "alert" else self.router.groups).get(key)
        self.router.dirty.clear()
        self.store.save(record, dirty, self.deliveries(notes), now)

    def deliveries(self, notes: list[Notification]) -> list[Delivery]:
        out = []
        for n in notes:
            receiver = self.policy.receivers.get(n.receiver)
            if receiver is None:
                continue
            msg = channels.message(n)
            out += [Delivery(n, i, ch.kind, ch.target or n.receiver, msg) for i, ch in enumerate(receiver.channels)]
        return out

    def secret(self, receiver: str, channel: str, target: str) -> str:
        rcv = self.policy.receivers.get(receiver)
        for ch in rcv.channels if rcv else ():
            if ch.kind == channel and (ch.target or receiver) == target:
                return ch.secret
        return ""
