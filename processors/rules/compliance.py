"""Hotel upload compliance: registrations must be uploaded in real time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec

from models import alerts as alert_types
from models.schemas import Alert, AlertState
from processors.rules.state import fresh


def late_upload_alert(hotel_id: str, registration_id: str, delay_s: float, at: datetime) -> Alert:
    return Alert(alert_id=f"hotel-late-upload:{hotel_id}:{at:%Y%m%d%H}", type="hotel-late-upload",
                 severity=alert_types.severity("hotel-late-upload"), state=AlertState.FIRING, device_id=hotel_id, since=at, at=at,
                 summary=f"hotel {hotel_id} uploaded a registration {delay_s / 60:.0f} min after check-in",
                 details={"registration_id": registration_id, "delay_s": round(delay_s, 1)})


# --------------------------------------------------------------------------- silent hotels
HOURS_PER_WEEK = 168


@dataclass(frozen=True)
class SilenceConfig:
    factor: float = 4.0  # silent when quiet for this many times the usual gap ...
    min_silence_s: float = 3600.0  # ... and at least this long
    min_samples: int = 3  # gaps seen at that hour of the week before judging by it
    learning_rate: float = 0.2


class HotelState(msgspec.Struct):
    last_at: datetime | None = None
    gaps: list[float] = []  # usual gap (seconds) by hour of the week the gap started in
    counts: list[int] = []
    overall: float = 0.0
    total: int = 0
    silent_since: datetime | None = None


def hour_of_week(t: datetime) -> int:
    return t.weekday() * 24 + t.hour  # in the hotel's own time zone (check-in times carry it)


def usual_gap(state: HotelState, at: datetime, cfg: SilenceConfig) -> float | None:
    if state.counts and state.counts[hour_of_week(at)] >= cfg.min_samples:
        return state.gaps[hour_of_week(at)]
    return state.overall if state.total >= 10 else None


def registered(state: HotelState, hotel: str, at: datetime, cfg: SilenceConfig = SilenceConfig()
               ) -> tuple[HotelState, list[Alert]]:
    """A registration: learn the gap since the previous one; end a silence."""
    s = fresh(state)
    if not s.gaps:
        s.gaps, s.counts = [0.0] * HOURS_PER_WEEK, [0] * HOURS_PER_WEEK
    alerts = []
    if s.silent_since is not None:
        alerts.append(_silent_alert(hotel, AlertState.CLEARED, s.silent_since, at, None))
        s.silent_since = None
    if s.last_at is not None and at > s.last_at:
        gap, h = (at - s.last_at).total_seconds(), hour_of_week(s.last_at)
        rate = max(cfg.learning_rate, 1.0 / (s.counts[h] + 1))
        s.gaps[h] += rate * (gap - s.gaps[h])
        s.counts[h] += 1
        s.overall += max(cfg.learning_rate, 1.0 / (s.total + 1)) * (gap - s.overall)
        s.total += 1
    s.last_at = at if s.last_at is None else max(s.last_at, at)
    return s, alerts


def silence(state: HotelState, hotel: str, now: datetime, cfg: SilenceConfig = SilenceConfig()
            ) -> tuple[HotelState, list[Alert]]:
    """Raise ``hotel-silent`` when a hotel has been quiet far longer than usual at that hour."""
    if state.last_at is None or state.silent_since is not None:
        return state, []
    usual = usual_gap(state, state.last_at, cfg)
    if usual is None:
        return state, []
    limit = max(cfg.factor * usual, cfg.min_silence_s)
    quiet = (now - state.last_at).total_seconds()
    if quiet < limit:
        return state, []
    s = fresh(state)
    s.silent_since = s.last_at + timedelta(seconds=limit)
    return s, [_silent_alert(hotel, AlertState.FIRING, s.silent_since, s.silent_since, usual)]


def _silent_alert(hotel: str, state: AlertState, since: datetime, at: datetime, usual: float | None) -> Alert:
    summary = (f"hotel {hotel} has uploaded no registration for far longer than its usual "
               f"{usual / 60:.0f} min at this hour" if state is AlertState.FIRING else f"hotel {hotel} uploading again")
    return Alert(alert_id=f"hotel-silent:{hotel}", type="hotel-silent", severity=alert_types.severity("hotel-silent"), state=state,
                 device_id=hotel, since=since, at=at, summary=summary,
                 details={"usual_gap_s": round(usual, 1)} if usual else {})
