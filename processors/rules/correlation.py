"""Site correlation: two or more sensors at one site in gas alarm within a window escalate to one
site alert of the highest severity (a real leak spreads; one faulty sensor does not)."""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from models import alerts as alert_types
from models.schemas import Alert, AlertState

GAS_ALARMS = frozenset({"gas-level-1", "gas-level-2", "co-alarm"})


class SiteState(msgspec.Struct):
    alarms: dict[str, datetime] = {}  # "sensor|alarm type" -> when that alarm started
    since: datetime | None = None  # when the site alert fired


def _in_alarm(alarms: dict[str, datetime]) -> dict[str, datetime]:
    """Sensors with any gas alarm still firing -> when their earliest one started."""
    out: dict[str, datetime] = {}
    for key, started in alarms.items():
        sensor = key.rpartition("|")[0]
        out[sensor] = min(out.get(sensor, started), started)
    return out


def site_step(state: SiteState, site: str, alert: Alert, window_s: float = 300.0) -> tuple[SiteState, list[Alert]]:
    """Apply one sensor's gas-alarm transition to its site's state. Alarms are tracked per (sensor,
    alarm type): a sensor whose level 2 clears is still in alarm while its level 1 fires."""
    if alert.type not in GAS_ALARMS:
        return state, []
    alarms = dict(state.alarms)
    key = f"{alert.device_id}|{alert.type}"
    if alert.state is AlertState.FIRING:
        alarms[key] = min(alarms.get(key, alert.since), alert.since)
    else:
        alarms.pop(key, None)
    firing = _in_alarm(alarms)
    new = SiteState(alarms=alarms, since=state.since)
    out: list[Alert] = []
    window = timedelta(seconds=window_s)
    if new.since is None and alert.state is AlertState.FIRING:
        together = sorted(s for s, t in firing.items() if abs(t - alert.since) <= window)
        if len(together) >= 2:
            new.since = alert.at
            out.append(_site_alert(site, AlertState.FIRING, new.since, alert.at, together))
    elif new.since is not None and len(firing) < 2:
        out.append(_site_alert(site, AlertState.CLEARED, new.since, alert.at, sorted(firing)))
        new.since = None
    return new, out


def _site_alert(site: str, state: AlertState, since: datetime, at: datetime, sensors: list[str]) -> Alert:
    verb = "in alarm together" if state is AlertState.FIRING else "no longer in alarm together"
    return Alert(alert_id=f"gas-site-alarm:{site}", type="gas-site-alarm", severity=alert_types.severity("gas-site-alarm"), state=state,
                 device_id=site, since=since, at=at, summary=f"{len(sensors)} sensors at site {site} {verb}",
                 details={"sensors": ",".join(sensors)[:200], "site": site})
