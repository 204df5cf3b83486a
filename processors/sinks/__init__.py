"""Where processor output goes, each behind a small add / flush / close interface."""

from __future__ import annotations

from typing import Protocol

from processors.rules.metrics import MetricPoint


class MetricSink(Protocol):
    def add(self, points: list[MetricPoint]) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...
