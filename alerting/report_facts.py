"""The governance report's facts for one period, from the alert store, InfluxDB (InfluxQL on
``/query``: 1.x, 2.x with the DBRP mapping, 3.x) and the device registry."""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from datetime import UTC, datetime

from alerting.report import Episode, Facts
from alerting.store import AlertStore
from models.registry import DeviceEntry
from models.settings import InfluxSettings
from models.topics import DeviceKind

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # device ids and districts (registry patterns)


def influxql(influx: InfluxSettings, q: str) -> list[dict]:
    """Rows of an InfluxQL query (``_tags`` holds the GROUP BY tags)."""
    db = influx.bucket.split("/")[0]
    url = influx.url.rstrip("/") + "/query?" + urllib.parse.urlencode({"db": db, "q": q})
    token = influx.token.get_secret_value()
    headers = {"Authorization": f"Token {token}"} if ":" not in token else {}  # 1.x user:password: no auth here
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60) as resp:
        body = json.load(resp)
    rows = []
    for result in body.get("results", []):
        if "error" in result:
            raise RuntimeError(f"InfluxDB: {result['error']}")
        for series in result.get("series", []):
            rows += [dict(zip(series["columns"], v, strict=True)) | {"_tags": series.get("tags", {})}
                     for v in series["values"]]
    return rows


def _when(start: datetime, end: datetime) -> str:
    def t(x: datetime) -> str:
        return x.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    return f"time >= '{t(start)}' AND time < '{t(end)}'"


def _any_of(tag: str, values: list[str]) -> str:
    safe = [v for v in values if _SAFE.match(v)]
    return f" AND {tag} =~ /^({'|'.join(re.escape(v) for v in safe)})$/" if safe else f" AND {tag} = '-'"


def gather(store: AlertStore, influx: InfluxSettings, registry: dict[str, DeviceEntry] | None, start: datetime,
           end: datetime, district: str | None) -> Facts:
    episodes = [Episode(*row) for row in store.episodes_between(start, end, district)]
    hotels = None if registry is None else [e.id for e in registry.values() if e.kind is DeviceKind.HOTEL
                                             and (district is None or e.district == district)]
    where = _when(start, end) + ("" if hotels is None or district is None else _any_of("hotel_id", hotels))
    per_hotel = influxql(influx, f'SELECT sum("count") AS n, sum("on_time") AS on_time, count("on_time") AS timed '
                                 f"FROM registrations WHERE {where} GROUP BY hotel_id")
    registrations = int(sum(r["n"] or 0 for r in per_hotel))
    timed = sum(r["timed"] or 0 for r in per_hotel)
    on_time = sum(r["on_time"] or 0 for r in per_hotel)
    reporting = {r["_tags"].get("hotel_id") for r in per_hotel if r["n"]}
    camera_where = _when(start, end) + (f" AND district = '{district}'" if district and _SAFE.match(district) else "")
    cameras = {r["_tags"]["camera_id"]: (float(r["healthy"]), int(r["frames"]))
               for r in influxql(influx, 'SELECT mean("healthy") AS healthy, count("healthy") AS frames FROM '
                                         f"camera_health WHERE {camera_where} GROUP BY camera_id") if r["frames"]}
    return Facts(episodes=episodes, registrations=registrations,
                 on_time_share=on_time / timed if timed else None,
                 hotels_total=len(hotels) if hotels is not None else len(reporting),
                 hotels_reporting=len(reporting if hotels is None else reporting & set(hotels)),
                 cameras=cameras)
