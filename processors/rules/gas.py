"""Gas alarm rule (first cut): combustible gas against two %LEL levels.

A level fires when a reading reaches it and clears when a reading falls below it. The later gas
safety work (hold times, hysteresis, rate of rise, CO dose, faults, offline) extends this module.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from models.schemas import Alert, AlertState, GasReading, GasType, Severity


@dataclass(frozen=True, slots=True)
class GasLevels:
    level1: float = 25.0
    level2: float = 50.0


@dataclass(frozen=True, slots=True)
class GasState:
    """Per-sensor state: since when each level has been firing (None: not firing)."""

    level1_since: datetime | None = None
    level2_since: datetime | None = None


LEVELS = (("gas-level-1", "level1", Severity.HIGH), ("gas-level-2", "level2", Severity.CRITICAL))


def alert_id(alert_type: str, sensor_id: str) -> str:
    return f"{alert_type}:{sensor_id}"


def step(state: GasState, reading: GasReading, levels: GasLevels) -> tuple[GasState, list[Alert]]:
    """Apply one reading; return the new state and the alert transitions it causes."""
    if reading.gas is not GasType.COMBUSTIBLE or reading.value is None or reading.value != reading.value:
        return state, []
    alerts: list[Alert] = []
    for alert_type, name, severity in LEVELS:
        threshold = getattr(levels, name)
        since: datetime | None = getattr(state, f"{name}_since")
        above = reading.value >= threshold
        if above and since is None:
            since = reading.measured_at
            state = replace(state, **{f"{name}_since": since})
            alerts.append(_alert(alert_type, severity, AlertState.FIRING, reading, since, threshold))
        elif not above and since is not None:
            state = replace(state, **{f"{name}_since": None})
            alerts.append(_alert(alert_type, severity, AlertState.CLEARED, reading, since, threshold))
    return state, alerts


def _alert(alert_type: str, severity: Severity, state: AlertState, reading: GasReading, since: datetime,
           threshold: float) -> Alert:
    verb = "at or above" if state is AlertState.FIRING else "back below"
    return Alert(alert_id=alert_id(alert_type, reading.sensor_id), type=alert_type, severity=severity,
                 state=state, device_id=reading.sensor_id, since=since, at=reading.measured_at,
                 summary=f"combustible gas {reading.value:.1f} %LEL, {verb} {threshold:g} %LEL",
                 details={"value": float(reading.value), "threshold": threshold, "unit": reading.unit.value})
