"""Generates the Grafana dashboards (JSON) from the panel definitions below.

    python -m dashboards.build          # rewrite dashboards/grafana/dashboards/*.json
    python -m dashboards.build --check  # exit 1 if the committed JSON is stale

Every panel queries InfluxDB in InfluxQL (served by InfluxDB 1.x, 2.x with a DBRP mapping, and
3.x), through the provisioned data source ``safecity-influxdb``. The tests run each query against
a real InfluxDB.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "grafana" / "dashboards"
DATASOURCE = {"type": "influxdb", "uid": "safecity-influxdb"}
ALERT_STORE = {"type": "grafana-postgresql-datasource", "uid": "safecity-alerts"}  # PostgreSQL, alert_board view


@dataclass(frozen=True)
class Panel:
    title: str
    query: str | tuple[str, ...]  # one target per query
    kind: str = "timeseries"  # timeseries | stat | table | bargauge
    unit: str = "short"
    width: int = 8
    height: int = 8
    thresholds: tuple[tuple[str, float | None], ...] = ()
    description: str = ""
    options: dict = field(default_factory=dict)
    source: str = "influxdb"  # influxdb (InfluxQL) | alerts (SQL on the alert store's alert_board view)
    legends: tuple[str, ...] = ()  # one per query; default: the GROUP BY tags' values, else the panel title


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    panels: tuple[Panel, ...]
    refresh: str = "5s"
    time_from: str = "now-1h"
    tags: tuple[str, ...] = ("safecity",)


def legend(panel: Panel, i: int, query: str) -> str:
    """The series' name on the wall (Grafana's InfluxQL alias): what it is, never "plate_reads.sum"."""
    if panel.legends:
        return panel.legends[i]
    depth, outer = 0, []
    for ch in query:  # the outer query only: subqueries, time(...) and fill(...) left out
        depth += ch == "("
        if depth == 0:
            outer.append(ch)
        depth -= ch == ")"
    text = "".join(outer)
    tags = re.findall(r'"(\w+)"', text.rsplit("GROUP BY", 1)[1]) if "GROUP BY" in text else []
    return " ".join(f"$tag_{t}" for t in tags) if tags else panel.title


def _target(panel: Panel, i: int, query: str) -> dict:
    if panel.source == "alerts":
        return {"refId": chr(ord("A") + i), "datasource": ALERT_STORE, "editorMode": "code", "format": "table",
                "rawQuery": True, "rawSql": query}
    return {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "rawQuery": True, "alias": legend(panel, i, query),
            "resultFormat": "table" if panel.kind in ("table", "geomap") else "time_series", "query": query}


def _panel_json(panel: Panel, pid: int, x: int, y: int) -> dict:
    defaults: dict = {"unit": panel.unit}
    if panel.thresholds:
        defaults["thresholds"] = {"mode": "absolute", "steps": [
            {"color": colour, "value": value} for colour, value in panel.thresholds]}
    return {
        "id": pid, "type": panel.kind, "title": panel.title, "description": panel.description,
        "datasource": ALERT_STORE if panel.source == "alerts" else DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": panel.width, "h": panel.height},
        "targets": [_target(panel, i, q) for i, q in enumerate(queries(panel))],
        "fieldConfig": {"defaults": defaults, "overrides": SEVERITY_OVERRIDES if panel.kind != "stat" else []},
        "options": panel.options,
    }


#: One colour per severity on every wall (the console's too).
SEVERITY_COLOURS = {"critical": "#d7263d", "high": "#f08a24", "warning": "#e0c422", "maintenance": "#4c8bf5",
                    "info": "#7a8793"}
SEVERITY_OVERRIDES = [{"matcher": {"id": "byName", "options": name},
                       "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": colour}}]}
                      for name, colour in SEVERITY_COLOURS.items()]
SQL_PLACE = "district ~ '^(${district:regex})$'"  # the same variable in the alert store's SQL

#: Alert transitions as annotations on every time-series panel (firing ones: when something happened).
ANNOTATION = {
    "name": "Alerts firing", "enable": True, "iconColor": "#d7263d", "datasource": DATASOURCE,
    "query": 'SELECT "count", "type", "severity", "device_id" FROM "alerts" WHERE "state" = \'firing\' '
             'AND $timeFilter AND "district" =~ /^$district$/',
    "textColumn": "device_id", "tagsColumn": "type,severity",
}


def geomap(layer: str, colour_field: str) -> dict:
    """Geomap options: points at latitude/longitude, coloured by a field, on Grafana's default base map
    (a command center sets its own tile server in Grafana's configuration)."""
    return {"view": {"id": "fit", "lat": 0, "lon": 0, "zoom": 12}, "controls": {"showZoom": True},
            "layers": [{"type": "markers", "name": layer, "location": {"mode": "coords", "latitude": "latitude",
                                                                          "longitude": "longitude"},
                        "config": {"style": {"size": {"fixed": 6}, "color": {"field": colour_field}}}}]}


#: Every query is filtered by the wall's district variable (All: any, points without a district too).
PLACE = '"district" =~ /^$district$/'
DISTRICT_VARIABLE = {
    "name": "district", "label": "District", "type": "query", "datasource": DATASOURCE,
    "query": 'SHOW TAG VALUES WITH KEY = "district"', "refresh": 2, "sort": 1,
    "includeAll": True, "allValue": ".*", "multi": True, "current": {"text": "All", "value": "$__all"},
}


def queries(panel: Panel) -> tuple[str, ...]:
    raw = (panel.query,) if isinstance(panel.query, str) else panel.query
    if panel.source == "alerts":  # the SQL names its own district filter (SQL_PLACE)
        return raw
    return tuple(q.replace("$timeFilter", f"$timeFilter AND {PLACE}") for q in raw)


def render(dash: Dashboard) -> dict:
    panels, x, y, row_height = [], 0, 0, 0
    for pid, panel in enumerate(dash.panels, start=1):
        if x + panel.width > 24:
            x, y, row_height = 0, y + row_height, 0
        panels.append(_panel_json(panel, pid, x, y))
        x, row_height = x + panel.width, max(row_height, panel.height)
    return {
        "uid": dash.uid, "title": dash.title, "tags": list(dash.tags), "timezone": "browser",
        "schemaVersion": 39, "version": 1, "editable": False, "graphTooltip": 1, "refresh": dash.refresh,
        "time": {"from": dash.time_from, "to": "now"}, "panels": panels,
        "templating": {"list": [DISTRICT_VARIABLE]}, "annotations": {"list": [ANNOTATION]},
    }


RED_AMBER_GREEN = (("green", None), ("orange", 1), ("red", 5))
SNAPSHOT = "time > now() - 30s AND " + PLACE  # the open-alert snapshot is written every few seconds, zeros included

CITY = Dashboard("safecity-city", "SafeCity: city overview", (
    Panel("Events per second by kind",
          ('SELECT sum("count") / 10 FROM "plate_reads" WHERE $timeFilter GROUP BY time(10s) fill(0)',
           'SELECT sum("count") / 10 FROM "registrations" WHERE $timeFilter GROUP BY time(10s) fill(0)',
           'SELECT sum("count") / 10 FROM "gas" WHERE $timeFilter GROUP BY time(10s) fill(0)'),
          unit="reqps", width=12, description="plate reads, hotel registrations and gas readings",
          legends=("plate reads", "registrations", "gas readings")),
    Panel("Open alerts now",
          f'SELECT sum("count") FROM (SELECT last("count") AS "count" FROM "alerts_open" WHERE {SNAPSHOT} '
          'GROUP BY "severity", "type", "district")', kind="stat", width=6,
          thresholds=RED_AMBER_GREEN,
          description="from the alert store's snapshot (every few seconds): right on any time range"),
    Panel("Dead letters (window)", 'SELECT sum("count") FROM "dead_letters" WHERE $timeFilter', kind="stat",
          width=6, thresholds=(("green", None), ("orange", 1), ("red", 100))),
    Panel("Alert transitions by type",
          'SELECT sum("count") FROM "alerts" WHERE $timeFilter GROUP BY time(1m), "type" fill(0)', width=12),
    Panel("Dead letters by reason",
          'SELECT sum("count") FROM "dead_letters" WHERE $timeFilter GROUP BY time(1m), "reason" fill(0)',
          width=12),
    Panel("Ingest latency p95 (device clock to ingest)",
          ('SELECT percentile("ingest_latency_s", 95) FROM "gas" WHERE $timeFilter GROUP BY time(1m) fill(null)',
           'SELECT percentile("ingest_latency_s", 95) FROM "plate_reads" WHERE $timeFilter '
           'GROUP BY time(1m) fill(null)'), unit="s", width=12, legends=("gas readings", "plate reads")),
    Panel("Open alerts by severity",
          f'SELECT sum("count") FROM (SELECT last("count") AS "count" FROM "alerts_open" WHERE {SNAPSHOT} '
          'GROUP BY "severity", "type", "district") GROUP BY "severity"', kind="bargauge", width=8,
          thresholds=RED_AMBER_GREEN),
    Panel("Handled within target, by district (%)",
          'SELECT sum("handled_in_time") * 100 / sum("count") FROM "alerts_closed" WHERE $timeFilter '
          'GROUP BY "district"', kind="bargauge", unit="percent", width=8,
          thresholds=(("red", None), ("orange", 80), ("green", 95)),
          description="alerts closed in the window that were acknowledged or closed within the target time"),
    Panel("Time to acknowledge / to close (median)",
          ('SELECT median("time_to_ack_s") FROM "alerts_closed" WHERE $timeFilter GROUP BY time(10m) fill(null)',
           'SELECT median("time_to_close_s") FROM "alerts_closed" WHERE $timeFilter GROUP BY time(10m) fill(null)'),
          unit="s", width=8, legends=("to acknowledge", "to close")),
    Panel("Notifications by channel and result",
          'SELECT sum("count") FROM "notifications" WHERE $timeFilter GROUP BY time(1m), "channel", "result" '
          'fill(0)', width=12, description="sent, retried, failed (a failure after the last retry is also a "
                                           "dead letter)"),
    Panel("Devices online",
          'SELECT sum("online") FROM (SELECT last("online") AS "online" FROM "device_status" WHERE $timeFilter '
          'GROUP BY "device_id")', kind="stat", width=12, thresholds=(("red", None), ("green", 1))),
    Panel("Devices online of total, by kind",
          'SELECT sum("online") AS "online", count("online") AS "total" FROM (SELECT last("online") AS "online" '
          'FROM "device_status" WHERE $timeFilter GROUP BY "device_id", "kind") GROUP BY "kind"', kind="table",
          width=12, description="devices that reported a status in the window: online now, and all of them"),
    Panel("Open alerts (alert store)",
          'SELECT first_seen AS "since", severity, status, type, site, district, '
          "coalesce(acknowledged_by, '') AS \"acknowledged by\", coalesce(assignee, '') AS assignee, "
          'count FROM alert_board WHERE status IN (\'firing\', \'acknowledged\') AND ' + SQL_PLACE +
          " ORDER BY severity_rank, first_seen DESC LIMIT 200",
          kind="table", width=24, height=9, source="alerts",
          description="every open alert with its state, age and who acknowledged it, from the alert store "
                      "(the same rows as the console's board)"),
    Panel("Map: open alerts",
          "SELECT latitude, longitude, severity, type, site FROM alert_board WHERE status IN ('firing', "
          "'acknowledged') AND latitude IS NOT NULL AND " + SQL_PLACE,
          kind="geomap", width=12, height=10, source="alerts", options=geomap("open alerts", "severity"),
          description="open alerts at their devices' registry coordinates"),
    Panel("Map: devices",
          'SELECT last("lat") AS "latitude", last("lon") AS "longitude", last("online") AS "online" FROM '
          '"device_status" WHERE $timeFilter GROUP BY "device_id", "kind"',
          kind="geomap", width=12, height=10, options=geomap("devices", "online"),
          description="every device that reported a status, at its registry coordinates (green: online)"),
    Panel("Offline devices",
          'SELECT "online", "device_id", "kind", "district" FROM (SELECT last("online") AS "online" FROM '
          '"device_status" WHERE $timeFilter GROUP BY "device_id", "kind", "district") WHERE "online" = 0',
          kind="table", width=12, description="which devices are offline now (their last status in the window)"),
))

GAS = Dashboard("safecity-gas", "SafeCity: gas safety", (
    Panel("Combustible gas by sensor (%LEL)",
          'SELECT max("value") FROM "gas" WHERE "gas" = \'combustible\' AND $timeFilter '
          'GROUP BY time(10s), "sensor_id" fill(null)', unit="percent", width=16,
          thresholds=(("green", None), ("orange", 25), ("red", 50))),
    Panel("Gas alarms open now",
          f'SELECT sum("count") FROM (SELECT last("count") AS "count" FROM "alerts_open" WHERE "type" =~ /^gas-/ '
          f'AND {SNAPSHOT} GROUP BY "severity", "type", "district")', kind="stat", width=8,
          thresholds=RED_AMBER_GREEN),
    Panel("Carbon monoxide by sensor (ppm)",
          'SELECT max("value") FROM "gas" WHERE "gas" = \'co\' AND $timeFilter GROUP BY time(10s), "sensor_id" '
          'fill(null)', unit="ppm", width=16),
    Panel("Lowest battery (%)",
          'SELECT min("battery") FROM "gas" WHERE $timeFilter GROUP BY "sensor_id"', kind="bargauge",
          unit="percent", width=8, thresholds=(("red", None), ("orange", 20), ("green", 40))),
))

CHECKPOINTS = Dashboard("safecity-checkpoints", "SafeCity: checkpoints and hotels", (
    Panel("Plate reads per minute by checkpoint",
          'SELECT sum("count") FROM "plate_reads" WHERE $timeFilter GROUP BY time(1m), "checkpoint_id" fill(0)',
          width=12),
    Panel("OCR confidence (mean)",
          'SELECT mean("confidence") FROM "plate_reads" WHERE $timeFilter GROUP BY time(1m) fill(null)',
          unit="percentunit", width=12),
    Panel("Registrations per minute by hotel",
          'SELECT sum("count") FROM "registrations" WHERE $timeFilter GROUP BY time(1m), "hotel_id" fill(0)',
          width=12),
    Panel("Registration upload delay p95",
          'SELECT percentile("upload_delay_s", 95) FROM "registrations" WHERE $timeFilter GROUP BY time(5m) '
          'fill(null)', unit="s", width=12),
))

WATCH = Dashboard("safecity-watchlists", "SafeCity: watch lists and compliance", (
    Panel("Watch-list hits by list and match kind",
          'SELECT sum("count") - sum("suppressed") FROM "watchlist_hits" WHERE $timeFilter '
          'GROUP BY time(5m), "list", "match" fill(0)', width=12,
          description="alerts raised (duplicates within the cooldown are not counted)"),
    Panel("Operator rejections by rule",
          'SELECT sum("count") FROM "alert_feedback" WHERE "decision" = \'rejected\' AND $timeFilter '
          'GROUP BY "rule"', kind="bargauge", width=12,
          description="false matches reported by operators: a noisy rule shows here"),
    Panel("Data-quality issues by place",
          'SELECT sum("count") FROM "data_quality" WHERE $timeFilter GROUP BY time(10m), "issue" fill(0)', width=12,
          description="ID numbers failing GB 11643, plate reads fitting no GA 36 format"),
    Panel("Hotels uploading on time",
          'SELECT mean("ok") FROM (SELECT min("on_time") AS "ok" FROM "registrations" WHERE $timeFilter '
          'GROUP BY "hotel_id")', kind="stat", unit="percentunit", width=12,
          thresholds=(("red", None), ("orange", 0.9), ("green", 0.98)),
          description="share of hotels whose every registration in the window was uploaded within the limit"),
))

CAMERAS = Dashboard("safecity-cameras", "SafeCity: camera health", (
    Panel("Healthy cameras by district",
          'SELECT sum("healthy") FROM (SELECT last("healthy") AS "healthy" FROM "camera_health" WHERE $timeFilter '
          'GROUP BY "camera_id", "district") GROUP BY "district"', kind="bargauge", width=12),
    Panel("Camera problems",
          'SELECT sum("problems") FROM "camera_health" WHERE $timeFilter GROUP BY time(1m), "camera_id" fill(0)',
          width=12),
    Panel("Sharpness by camera",
          'SELECT mean("blur") FROM "camera_health" WHERE $timeFilter GROUP BY time(1m), "camera_id" fill(null)',
          width=12),
    Panel("Motion events", 'SELECT sum("count") FROM "camera_motion" WHERE "state" = \'start\' AND $timeFilter '
          'GROUP BY time(1m), "camera_id" fill(0)', width=12),
))

DASHBOARDS = (CITY, GAS, CHECKPOINTS, WATCH, CAMERAS)


def write(check: bool = False) -> list[Path]:
    stale = []
    OUT.mkdir(parents=True, exist_ok=True)
    for dash in DASHBOARDS:
        path = OUT / f"{dash.uid}.json"
        text = json.dumps(render(dash), indent=2, ensure_ascii=False) + "\n"
        if not path.exists() or path.read_text() != text:
            stale.append(path)
            if not check:
                path.write_text(text)
    return stale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed JSON is stale")
    args = parser.parse_args()
    stale = write(check=args.check)
    for path in stale:
        print(f"{'stale' if args.check else 'wrote'} {path.relative_to(HERE.parent)}")
    sys.exit(1 if args.check and stale else 0)


if __name__ == "__main__":
    main()
