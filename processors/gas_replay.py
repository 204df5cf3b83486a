"""`safecity gas replay`: the gas rules, with their default settings, over a recorded CSV series.

Columns ``time,sensor_id,gas,value,unit`` (+ optional ``battery``); ``gas`` is ``combustible``
(``%LEL``) or ``co`` (``ppm``); ``value`` may be empty or ``NaN``. Time advances with the readings:
silence is detected when a later reading shows it. Prints one JSON object per alert transition.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from models.schemas import GAS_UNITS, Alert, GasReading, GasType, GasUnit
from processors.rules import correlation, gas

REQUIRED = ("time", "sensor_id", "gas", "value", "unit")
SENSOR_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ReplayError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


@dataclass(frozen=True)
class Row:
    line: int
    reading: GasReading


def _parse_time(text: str) -> datetime:
    t = datetime.fromisoformat(text.strip())
    if t.tzinfo is None:  # a device clock's zone cannot be guessed: the series says it, or it is an error
        raise ValueError(f"time {text.strip()[:40]!r} has no time zone (add Z or +08:00)")
    return t


def _parse_value(text: str) -> float | None:
    text = text.strip()
    if text == "":
        return None
    value = float(text)  # accepts NaN, nan
    return value


def read_rows(fh: TextIO) -> list[Row]:
    reader = csv.DictReader(fh)
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise ReplayError(1, f"missing column(s) {', '.join(missing)}; need {','.join(REQUIRED)}")
    rows: list[Row] = []
    for row in reader:
        line = reader.line_num
        try:
            if None in row or any(row.get(c) is None for c in REQUIRED):
                raise ValueError("wrong number of fields")
            sensor = row["sensor_id"].strip()
            if not SENSOR_RE.match(sensor):
                raise ValueError(f"bad sensor_id {sensor[:40]!r}")
            kind, unit = GasType(row["gas"].strip()), GasUnit(row["unit"].strip())
            if GAS_UNITS[kind] is not unit:
                raise ValueError(f"unit {unit.value} does not fit gas {kind.value}")
            battery = _parse_value(row.get("battery") or "")
            if battery is not None and (math.isnan(battery) or not 0 <= battery <= 100):
                battery = None
            reading = GasReading(sensor_id=sensor, gas=kind, value=_parse_value(row["value"]), unit=unit,
                                 measured_at=_parse_time(row["time"]), battery=battery)
        except (ValueError, KeyError, AttributeError) as exc:
            raise ReplayError(line, str(exc)) from None
        rows.append(Row(line, reading))
    rows.sort(key=lambda r: r.reading.measured_at)
    return rows


def replay(rows: Iterable[Row], cfg: gas.GasConfig, sites: dict[str, str] | None = None,
           site_window_s: float = 300.0) -> Iterator[Alert]:
    """Alert transitions in time order; with ``sites`` (sensor -> site, from the registry) also the
    site correlation's ``gas-site-alarm`` transitions, whose device is the site."""
    states: dict[str, gas.GasState] = {}
    site_states: dict[str, correlation.SiteState] = {}

    def with_sites(alerts: list[Alert]) -> Iterator[Alert]:
        for alert in alerts:
            yield alert
            site = (sites or {}).get(alert.device_id)
            if site:
                site_states[site], out = correlation.site_step(site_states.get(site, correlation.SiteState()),
                                                               site, alert, site_window_s)
                yield from out

    for row in rows:
        reading = row.reading
        now = reading.measured_at
        pending: list[Alert] = []
        for sensor, state in states.items():
            states[sensor], alerts = gas.silence(state, sensor, now, cfg)
            pending += alerts
        states[reading.sensor_id], alerts = gas.step(states.get(reading.sensor_id, gas.GasState()), reading, cfg)
        yield from with_sites(sorted(pending, key=lambda a: a.at))
        yield from with_sites(alerts)


def as_line(alert: Alert) -> dict:
    return {"time": alert.at.isoformat(), "sensor_id": alert.device_id, "type": alert.type,
            "state": alert.state.value, "severity": alert.severity.value}
