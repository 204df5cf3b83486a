"""The devices page and the map: every registered device with its state, last seen, battery and
open alerts; hotels with their upload timeliness.

``device_view`` decides a device's state without I/O; ``device_facts`` reads the facts it needs
from InfluxDB (InfluxQL, as the walls do). The state is what the pipeline itself concluded (its
open alerts: the offline check is the worker's deadline index, not a guess here), and only
without an alert, from when the device was last heard of."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from alerting.report_facts import influxql
from models import alerts as alert_types
from models.alerts import Closing
from models.registry import DeviceEntry
from models.settings import InfluxSettings

OFFLINE = frozenset({"sensor-offline", "hotel-silent"})
FAULTY = frozenset({"sensor-fault", "sensor-flapping", "camera-tampered", "camera-frozen", "camera-blurred",
                    "camera-image-quality"})
LOW_BATTERY = frozenset({"low-battery"})
STATES = ("alarm", "offline", "faulty", "low-battery", "online", "unknown")  # worst first
DEFAULT_INTERVAL = {"gas": 60.0, "camera": 300.0, "hotel": 3600.0}
LOOK_BACK = "7d"


@dataclass(frozen=True, slots=True)
class Facts:
    last_seen: datetime | None = None
    online: bool | None = None  # the device's own last status message
    battery: float | None = None
    on_time_share: float | None = None  # hotels: registrations uploaded in time, last 24 h
    registrations_24h: int | None = None


@dataclass(frozen=True, slots=True)
class DeviceView:
    id: str
    kind: str
    state: str
    district: str
    site: str
    grid: str
    lat: float | None
    lon: float | None
    last_seen: datetime | None
    battery: float | None
    on_time_share: float | None
    registrations_24h: int | None
    alerts: list[dict] = field(default_factory=list)  # open alerts: id, type, severity, status


def _about_the_device(alert_type: str) -> bool:
    """Leads (a wanted plate seen at a checkpoint) and notices say nothing of the device's health."""
    try:
        return alert_types.alert_type(alert_type).closing is Closing.CONDITION
    except alert_types.UnknownAlertType:
        return False


def device_view(entry: DeviceEntry, facts: Facts, open_alerts: list[dict], now: datetime) -> DeviceView:
    conditions = [a for a in open_alerts if _about_the_device(a["type"])]
    types = {a["type"] for a in conditions}
    if any(a["type"].startswith(("gas-", "co-")) for a in conditions):
        state = "alarm"
    elif types & OFFLINE or facts.online is False:
        state = "offline"
    elif types & FAULTY:
        state = "faulty"
    elif types & LOW_BATTERY:
        state = "low-battery"
    elif facts.last_seen is None:
        state = "unknown"
    else:
        interval = entry.interval_s or DEFAULT_INTERVAL.get(entry.kind.value, 300.0)
        state = "online" if now - facts.last_seen <= timedelta(seconds=3 * interval) else "offline"
    return DeviceView(id=entry.id, kind=entry.kind.value, state=state, district=entry.district or "",
                      site=entry.site or entry.id, grid=entry.grid or "", lat=entry.lat, lon=entry.lon,
                      last_seen=facts.last_seen, battery=facts.battery, on_time_share=facts.on_time_share,
                      registrations_24h=facts.registrations_24h,
                      alerts=[{k: a[k] for k in ("alert_id", "type", "severity", "status")} for a in open_alerts])


def device_facts(influx: InfluxSettings) -> dict[str, Facts]:
    """Per device id, from the last week's metrics (ids as ingest tagged them)."""
    seen: dict[str, datetime] = {}
    extra: dict[str, dict] = {}

    def last(q: str, tag: str, *names: str, seen_at: bool = True) -> None:
        """One query's rows per device: their time as last seen (a selector's time is its point's),
        and the named values."""
        for row in influxql(influx, q):
            device = row["_tags"].get(tag)
            if not device or row.get("time") is None:
                continue
            if seen_at:
                at = datetime.fromisoformat(row["time"])
                seen[device] = max(seen.get(device, at), at)
            for name in names:
                extra.setdefault(device, {})[name] = row.get(name)

    week = f"time > now() - {LOOK_BACK}"
    last(f'SELECT last("count") FROM gas WHERE {week} GROUP BY sensor_id', "sensor_id")
    last(f'SELECT last("count") FROM plate_reads WHERE {week} GROUP BY checkpoint_id', "checkpoint_id")
    last(f'SELECT last("healthy") FROM camera_health WHERE {week} GROUP BY camera_id', "camera_id")
    last(f'SELECT last("count") FROM registrations WHERE {week} GROUP BY hotel_id', "hotel_id")
    last(f'SELECT last("online") AS online FROM device_status WHERE {week} GROUP BY device_id', "device_id", "online")
    last(f'SELECT last("battery") AS battery FROM gas WHERE {week} GROUP BY sensor_id', "sensor_id", "battery")
    # aggregates: a row's time is the window's start, not a point's
    last('SELECT mean("on_time") AS on_time, sum("count") AS n FROM registrations WHERE time > now() - 24h '
         'GROUP BY hotel_id', "hotel_id", "on_time", "n", seen_at=False)
    out = {}
    for device in seen.keys() | extra.keys():
        x = extra.get(device, {})
        out[device] = Facts(last_seen=seen.get(device),
                            online=None if x.get("online") is None else bool(x["online"]),
                            battery=x.get("battery"), on_time_share=x.get("on_time"),
                            registrations_24h=None if x.get("n") is None else int(x["n"]))
    return out
