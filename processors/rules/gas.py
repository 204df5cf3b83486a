"""Gas safety rules, as pure code over one sensor's state.

``step(state, reading, cfg)`` applies a reading, ``silence(state, sensor, now, cfg)`` checks for a
sensor that stopped reporting, ``status(state, sensor, online, at, cfg)`` applies the MQTT
availability (the last will). Each returns the new state and the alert transitions, so a worker
(or ``safecity gas replay``) only stores the state and sends the alerts.

Rules (all thresholds in GasConfig, overridable per sensor through the registry):

* **Combustible gas levels** (GB/T 50493-2019: first level 25 %LEL, second 50 %LEL). A level fires
  once readings at or above it have held for ``hold_readings`` consecutive readings (or
  ``hold_s`` seconds, if set); it clears only after readings stay below the lower clear level
  (``clear_ratio`` x level) for ``clear_s`` seconds. A value hovering at the level does not flap.
* **Rate of rise**: a rise of ``ror_rise_lel`` within ``ror_window_s`` warns before the first
  level; the warning clears when the rise over the window falls below half of that.
* **Carbon monoxide dose** (shape of EN 50291 / UL 2034): see ``co_rate``. Clears once the
  concentration stays below ``co_floor_ppm`` for ``clear_s``.
* **Sensor faults** (maintenance, never a gas alarm): no value / NaN, outside the physical range,
  negative, a value stuck unchanged for ``stuck_s``, or a slew faster than the sensor can
  physically produce. Faulty readings are kept out of the gas rules. Cleared by a good reading.
* **Offline**: no reading for ``offline_intervals`` x the expected interval, or the last will; both
  clear on the next good reading. ``flap_count`` offline episodes within ``flap_window_s`` raise one
  ``sensor-flapping`` alert instead of an offline alert each time.
* **Low battery** below ``battery_low`` %, cleared above ``battery_ok`` %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec

from models import alerts as alert_types
from models.schemas import Alert, AlertState, GasReading, GasType


@dataclass(frozen=True)
class GasConfig:
    level1_lel: float = 25.0
    level2_lel: float = 50.0
    clear_ratio: float = 0.8
    hold_readings: int = 2
    hold_s: float | None = None
    clear_s: float = 60.0
    ror_rise_lel: float = 10.0
    ror_window_s: float = 60.0
    co_floor_ppm: float = 30.0
    lel_max: float = 100.0
    co_max_ppm: float = 1000.0
    stuck_s: float = 4 * 3600.0
    stuck_min_readings: int = 10
    max_slew_lel_per_s: float = 10.0
    max_slew_ppm_per_s: float = 100.0
    interval_s: float = 60.0
    offline_intervals: int = 3
    flap_count: int = 3
    flap_window_s: float = 600.0
    battery_low: float = 20.0
    battery_ok: float = 25.0

    def with_overrides(self, thresholds: dict[str, float], interval_s: float | None) -> GasConfig:
        from dataclasses import replace

        known = {k: v for k, v in thresholds.items() if k in self.__dataclass_fields__}
        return replace(self, **known, **({"interval_s": interval_s} if interval_s else {}))


# CO: time to alarm at a constant concentration (ppm -> minutes). Between points the alarm *rate*
# (1 / time) is interpolated linearly; at or below 30 ppm nothing accumulates.
#   30 ppm never | 50 ppm 75 min (EN 50291: 60-90) | 100 ppm 25 min (10-40) | 300 ppm 2 min (< 3)
CO_CURVE = ((30.0, math.inf), (50.0, 75.0), (100.0, 25.0), (300.0, 2.0))
CO_MAX_STEP_S = 300.0  # a gap longer than this between readings is not integrated (unknown exposure)
CO_DECAY_S = 1800.0  # below the floor the accumulated dose decays with this time constant


def co_rate(ppm: float) -> float:
    """Fraction of the alarm dose accumulated per minute at ``ppm`` (alarm at 1.0)."""
    points = [(c, 0.0 if math.isinf(t) else 1.0 / t) for c, t in CO_CURVE]
    if ppm <= points[0][0]:
        return 0.0
    for (c0, r0), (c1, r1) in zip(points, points[1:], strict=False):
        if ppm <= c1:
            return r0 + (r1 - r0) * (ppm - c0) / (c1 - c0)
    c_last, r_last = points[-1]
    return r_last * ppm / c_last


class Level(msgspec.Struct, gc=False, omit_defaults=True):
    above_since: datetime | None = None
    above_count: int = 0
    firing_since: datetime | None = None
    below_since: datetime | None = None


class GasState(msgspec.Struct, gc=False, omit_defaults=True):
    """Everything the rules remember about one sensor (stored in a Faust table).

    Not tracked by the cyclic garbage collector (``gc=False``; plain data, never in a cycle), and its
    sequences are tuples, which the collector stops tracking once it finds only such data in them: a
    worker holds every sensor's state decoded (``StructTable``'s cache), and with lists and tracked
    structs each state was five objects every full collection walked (20,000 sensors: 100,000 of the
    worker's 135,000 tracked objects; its full collections held the loop 100-170 ms).

    Stored without the fields at their defaults (``omit_defaults``; a state stored with them decodes
    the same): a sensor's changelog record, one per reading, was 994 bytes on average in the pipeline
    benchmark, most of them nulls and zeros of alarms that never fired."""

    last_seen: datetime | None = None
    last_seq: int | None = None  # of the reading at last_seen: a replay of it is recognised
    recent: tuple[Alert, ...] = ()  # the last few transitions, re-sent when their reading is replayed
    last_good: tuple[datetime, float] | None = None
    levels: dict[str, Level] = {}
    ror_window: tuple[tuple[datetime, float], ...] = ()
    ror_since: datetime | None = None
    co_dose: float = 0.0
    co_last: datetime | None = None
    co_since: datetime | None = None
    co_below_since: datetime | None = None
    fault_since: datetime | None = None
    stuck_since: datetime | None = None
    stuck_count: int = 0
    offline_since: datetime | None = None
    offline_notified: bool = False
    offline_events: tuple[datetime, ...] = ()
    flapping_since: datetime | None = None
    battery_low_since: datetime | None = None


def _own(state: GasState) -> GasState:
    """A copy of ``state`` the rules may change: a new struct that shares the parts no rule changes
    in place (datetimes, numbers, tuples, the alerts in ``recent``: the rules replace those) and has
    its own ``levels``, the one field they change in place (a ``Level`` per alarm level, counted up
    reading by reading). Every step starts from it, so a rule never changes its input (the tests
    hold each step's input unchanged). A JSON round trip (``rules/state.fresh``) did the same in
    about 4.6 µs for a state mid-alarm, this in about 0.44 µs (the best of 5 timeit runs each); the
    round trip was 15 % of the gas agent's time in py-spy at 3,500 readings/s."""
    return msgspec.structs.replace(state, levels={name: msgspec.structs.replace(level)
                                                  for name, level in state.levels.items()})


@dataclass(frozen=True)
class _Emit:
    sensor: str
    at: datetime
    out: list[Alert]

    def __call__(self, alert_type: str, state: AlertState, since: datetime, summary: str, **details) -> None:
        self.out.append(Alert(alert_id=f"{alert_type}:{self.sensor}", type=alert_type,
                              severity=alert_types.severity(alert_type), state=state, device_id=self.sensor, since=since,
                              at=self.at, summary=summary[:300], details=details))


FIRING, CLEARED = AlertState.FIRING, AlertState.CLEARED


def _fault_reason(reading: GasReading, state: GasState, cfg: GasConfig) -> str | None:
    v = reading.value
    if v is None or math.isnan(v) or math.isinf(v):
        return "no-value"
    top = cfg.lel_max if reading.gas is GasType.COMBUSTIBLE else cfg.co_max_ppm
    if v < 0 or v > top:
        return "out-of-range"
    if state.last_good is not None:
        t0, v0 = state.last_good
        dt = (reading.measured_at - t0).total_seconds()
        slew = cfg.max_slew_lel_per_s if reading.gas is GasType.COMBUSTIBLE else cfg.max_slew_ppm_per_s
        if dt > 0 and abs(v - v0) / dt > slew:
            return "spike"
    return None


RECENT = 8  # transitions kept for replays: far more than a commit interval's worth per sensor


def replayed(state: GasState, reading: GasReading) -> bool:
    """Is this reading not newer than the last one applied? At least once means a worker that
    takes over a partition replays from the committed offset while the table (changelogged ahead
    of the offset) already holds the result: applying a reading twice would count a level twice
    (an alarm after one reading instead of two) or date a clear from an old sample. So is a reading
    the device sent late, out of order: it goes to the metrics, never back into the alarm state."""
    if state.last_seen is None:
        return False
    t = reading.measured_at
    if t != state.last_seen:
        return t < state.last_seen
    return reading.seq is None or state.last_seq is None or reading.seq <= state.last_seq


def step(state: GasState, reading: GasReading, cfg: GasConfig) -> tuple[GasState, list[Alert]]:
    """Apply one reading. A replayed one (see ``replayed``) changes nothing and sends again the
    transitions it caused the first time, should they have been lost with the worker that first
    applied it (the alert service recognises a repeat, so nobody is notified twice)."""
    t = reading.measured_at
    if replayed(state, reading):
        return state, [a for a in state.recent if a.at == t]
    s = _own(state)
    out: list[Alert] = []
    emit = _Emit(reading.sensor_id, t, out)
    s.last_seen, s.last_seq = t, reading.seq
    _apply(s, reading, cfg, t, emit)
    if out:
        s.recent = (s.recent + tuple(out))[-RECENT:]
    return s, out


def _apply(s: GasState, reading: GasReading, cfg: GasConfig, t: datetime, emit: _Emit) -> None:
    _battery(s, reading, cfg, emit)

    reason = _fault_reason(reading, s, cfg)
    if reason is None:
        reason = _stuck(s, reading, cfg)
    if reason is not None:
        if s.fault_since is None:
            s.fault_since = t
            emit("sensor-fault", FIRING, t, f"sensor fault: {reason}", reason=reason)
        if reason == "stuck":  # the value is plausible but frozen: keep tracking it
            s.last_good = (t, float(reading.value))
        return

    value = float(reading.value)
    if s.fault_since is not None:
        emit("sensor-fault", CLEARED, s.fault_since, "sensor reads plausibly again")
        s.fault_since = None
    _back_online(s, t, cfg, emit)
    s.last_good = (t, value)
    if reading.gas is GasType.COMBUSTIBLE:
        _rate_of_rise(s, t, value, cfg, emit)
        _levels(s, t, value, cfg, emit)
    else:
        _co(s, t, value, cfg, emit)


def _stuck(s: GasState, reading: GasReading, cfg: GasConfig) -> str | None:
    value = float(reading.value)
    if s.last_good is not None and value == s.last_good[1] and value != 0.0:
        s.stuck_since = s.stuck_since or s.last_good[0]
        s.stuck_count += 1
        held = (reading.measured_at - s.stuck_since).total_seconds()
        if held >= cfg.stuck_s and s.stuck_count + 1 >= cfg.stuck_min_readings:
            return "stuck"
    else:
        s.stuck_since, s.stuck_count = None, 0
    return None


def _levels(s: GasState, t: datetime, v: float, cfg: GasConfig, emit: _Emit) -> None:
    for name, level in (("gas-level-1", cfg.level1_lel), ("gas-level-2", cfg.level2_lel)):
        st = s.levels.setdefault(name, Level())
        clear_level = level * cfg.clear_ratio
        if st.firing_since is None:
            if v >= level:
                st.above_since = st.above_since or t
                st.above_count += 1
                held = cfg.hold_s is not None and (t - st.above_since).total_seconds() >= cfg.hold_s
                if st.above_count >= cfg.hold_readings or held:
                    st.firing_since, st.below_since = st.above_since, None
                    emit(name, FIRING, st.firing_since, f"combustible gas {v:.1f} %LEL, at or above {level:g} %LEL",
                         value=v, threshold=level, unit="%LEL")
            else:
                st.above_since, st.above_count = None, 0
        elif v < clear_level:
            st.below_since = st.below_since or t
            if (t - st.below_since).total_seconds() >= cfg.clear_s:
                emit(name, CLEARED, st.firing_since, f"combustible gas {v:.1f} %LEL, below {clear_level:g} %LEL "
                     f"for {cfg.clear_s:g} s", value=v, threshold=level, unit="%LEL")
                s.levels[name] = Level()
        else:
            st.below_since = None


def _rate_of_rise(s: GasState, t: datetime, v: float, cfg: GasConfig, emit: _Emit) -> None:
    horizon = t - timedelta(seconds=cfg.ror_window_s)
    s.ror_window = (*(sample for sample in s.ror_window if sample[0] >= horizon), (t, v))
    rise = v - min(sample[1] for sample in s.ror_window)
    level1 = s.levels.get("gas-level-1")
    if s.ror_since is None:
        if rise >= cfg.ror_rise_lel and v < cfg.level1_lel and (level1 is None or level1.firing_since is None):
            s.ror_since = t
            emit("gas-rate-of-rise", FIRING, t, f"combustible gas rose {rise:.1f} %LEL within "
                 f"{cfg.ror_window_s:g} s (now {v:.1f} %LEL)", rise=rise, value=v, unit="%LEL")
    elif rise < cfg.ror_rise_lel / 2:
        emit("gas-rate-of-rise", CLEARED, s.ror_since, f"combustible gas no longer rising fast ({v:.1f} %LEL)",
             rise=rise, value=v, unit="%LEL")
        s.ror_since = None


def _co(s: GasState, t: datetime, ppm: float, cfg: GasConfig, emit: _Emit) -> None:
    # Right Riemann sum: a sample stands for the interval it ends (capped: a long gap is unknown).
    dt = 0.0 if s.co_last is None else min(max((t - s.co_last).total_seconds(), 0.0), CO_MAX_STEP_S)
    s.co_last = t
    if ppm > cfg.co_floor_ppm:
        s.co_dose += co_rate(ppm) * dt / 60.0
        s.co_below_since = None
    else:
        s.co_dose *= math.exp(-dt / CO_DECAY_S)
    if s.co_since is None:
        if s.co_dose >= 1.0:
            s.co_since = t
            emit("co-alarm", FIRING, t, f"carbon monoxide {ppm:.0f} ppm: alarm dose reached", value=ppm, unit="ppm",
                 dose=round(s.co_dose, 3))
    elif ppm <= cfg.co_floor_ppm:
        s.co_below_since = s.co_below_since or t
        if (t - s.co_below_since).total_seconds() >= cfg.clear_s:
            emit("co-alarm", CLEARED, s.co_since, f"carbon monoxide {ppm:.0f} ppm, below {cfg.co_floor_ppm:g} ppm",
                 value=ppm, unit="ppm")
            s.co_since, s.co_below_since, s.co_dose = None, None, 0.0


def _battery(s: GasState, reading: GasReading, cfg: GasConfig, emit: _Emit) -> None:
    b = reading.battery
    if b is None:
        return
    if s.battery_low_since is None and b < cfg.battery_low:
        s.battery_low_since = reading.measured_at
        emit("low-battery", FIRING, reading.measured_at, f"battery {b:.0f} %", battery=b)
    elif s.battery_low_since is not None and b > cfg.battery_ok:
        emit("low-battery", CLEARED, s.battery_low_since, f"battery {b:.0f} %", battery=b)
        s.battery_low_since = None


# --------------------------------------------------------------------------- availability
def _go_offline(s: GasState, at: datetime, why: str, cfg: GasConfig, emit: _Emit) -> None:
    if s.offline_since is not None:
        return
    s.offline_since = at
    horizon = at - timedelta(seconds=cfg.flap_window_s)
    s.offline_events = (*(e for e in s.offline_events if e >= horizon), at)
    if s.flapping_since is None and len(s.offline_events) >= cfg.flap_count:
        s.flapping_since = at
        emit("sensor-flapping", FIRING, at, f"sensor went offline {len(s.offline_events)} times within "
             f"{cfg.flap_window_s:g} s", episodes=len(s.offline_events))
    if s.flapping_since is None:
        s.offline_notified = True
        emit("sensor-offline", FIRING, at, f"sensor offline ({why})", reason=why)


def _back_online(s: GasState, t: datetime, cfg: GasConfig, emit: _Emit) -> None:
    if s.offline_since is not None:
        if s.offline_notified:
            emit("sensor-offline", CLEARED, s.offline_since, "sensor reporting again")
        s.offline_since, s.offline_notified = None, False
    if s.flapping_since is not None and s.offline_events and \
            (t - s.offline_events[-1]).total_seconds() >= cfg.flap_window_s:
        emit("sensor-flapping", CLEARED, s.flapping_since, "sensor connection stable again")
        s.flapping_since, s.offline_events = None, ()


def silent_at(state: GasState, cfg: GasConfig) -> datetime | None:
    """When the sensor counts as silent if nothing more arrives (None: never seen, or offline already)."""
    if state.last_seen is None or state.offline_since is not None:
        return None
    return state.last_seen + timedelta(seconds=cfg.interval_s * cfg.offline_intervals)


def silence(state: GasState, sensor: str, now: datetime, cfg: GasConfig) -> tuple[GasState, list[Alert]]:
    """Raise ``sensor-offline`` when no reading came for ``offline_intervals`` expected intervals.
    The alert's time is the moment the silence became long enough, not ``now``."""
    at = silent_at(state, cfg)
    if at is None or now < at:
        return state, []
    s = _own(state)
    out: list[Alert] = []
    _go_offline(s, at, "silent", cfg, _Emit(sensor, at, out))
    return s, out


def status(state: GasState, sensor: str, online: bool, at: datetime, cfg: GasConfig) -> tuple[GasState, list[Alert]]:
    """The retained availability message: ``offline`` (the last will) raises sensor-offline at once;
    ``online`` clears nothing by itself (the next good reading does)."""
    if online:
        return state, []
    s = _own(state)
    out: list[Alert] = []
    _go_offline(s, at, "last-will", cfg, _Emit(sensor, at, out))
    return s, out
