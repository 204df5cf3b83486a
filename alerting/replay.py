"""`safecity alert route-test`: replay a timeline of alert transitions and operator actions through
the lifecycle and the router, with no server, and list the notifications in time order."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import datetime

import msgspec

from alerting.lifecycle import AlertAction, AlertRecord, IllegalStep, apply_action, on_transition, place_of
from alerting.policy import Policy
from alerting.routing import Notification, Router
from models.registry import DeviceEntry
from models.schemas import Alert, SchemaError, decode_as


class TimelineError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


def read_timeline(lines: Iterable[str]) -> Iterator[tuple[int, Alert | AlertAction]]:
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TimelineError(n, f"not JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise TimelineError(n, "each line must be a JSON object")
        try:
            if "action" in data:
                yield n, msgspec.convert(data, AlertAction, strict=False)
            else:
                yield n, decode_as(Alert, line)
        except (msgspec.ValidationError, SchemaError) as exc:
            raise TimelineError(n, str(exc)) from None


def _time(item: Alert | AlertAction) -> datetime:
    return item.at


def route_test(items: list[tuple[int, Alert | AlertAction]], policy: Policy, registry: dict[str, DeviceEntry],
               until: datetime | None = None) -> Iterator[Notification | tuple[int, str]]:
    """Yield notifications in time order; an illegal action yields (line, message) and changes nothing."""
    router = Router(policy)
    records: dict[str, AlertRecord] = {}
    last: datetime | None = None
    for n, item in sorted(items, key=lambda i: (_time(i[1]), i[0])):
        yield from router.advance(item.at)
        last = item.at
        try:
            if isinstance(item, AlertAction):
                outcome = apply_action(records.get(item.alert_id), item)
            else:
                outcome = on_transition(records.get(item.alert_id), item, place_of(item.device_id, registry))
        except IllegalStep as exc:
            yield n, str(exc)
            continue
        if outcome.change is not None and outcome.record is not None:
            records[outcome.record.alert_id] = outcome.record
            yield from router.on_change(outcome.record, outcome.change, item.at)
    end = until or last
    if end is not None:
        yield from router.advance(end)
