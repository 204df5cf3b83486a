"""Idempotent notification: each alert transition is notified once, however often it is replayed.

Transitions of one alert are ordered by (episode start, firing before cleared). The notifier
keeps the last position it notified per alert id; a transition at or before it is a replay.
"""

from __future__ import annotations

from models.schemas import Alert, AlertState

_RANK = {AlertState.FIRING: 0, AlertState.CLEARED: 1}


def position(alert: Alert) -> str:
    """A sortable position of this transition: ISO time of the episode start, then its rank."""
    return f"{alert.since.astimezone().timestamp():020.6f}|{_RANK[alert.state]}"


def should_notify(last_position: str | None, alert: Alert) -> bool:
    return last_position is None or position(alert) > last_position
