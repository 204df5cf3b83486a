"""The governance report (``safecity report``): what a command center reports upward for a period,
against the period before it. Pure: the figures from facts gathered elsewhere (the alert store's
episodes, InfluxDB's counts, the registry), and the HTML page with its charts as inline SVG. No name,
ID number or free text ever enters it: alerts are counted by type, district, site and device.

The page carries every figure also as JSON (``<script id="report-data" type="application/json">``), so
a test, or a spreadsheet, reads exactly what the page shows."""

from __future__ import annotations

import html
import json
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime

HOTEL_LATE, HOTEL_SILENT = "hotel-late-upload", "hotel-silent"
CAMERA_TYPES = ("camera-tampered", "camera-blurred", "camera-frozen", "camera-offline")


@dataclass(frozen=True)
class Episode:
    """One alert episode, as the report counts it (no details, no free text)."""

    type: str
    severity: str
    device_id: str
    district: str
    site: str
    first_seen: datetime
    acknowledged_at: datetime | None = None
    closed_at: datetime | None = None

    def handled_at(self) -> datetime | None:
        times = [t for t in (self.acknowledged_at, self.closed_at) if t is not None]
        return min(times) if times else None


@dataclass(frozen=True)
class Facts:
    """What the report needs about one period."""

    episodes: list[Episode]
    registrations: int = 0
    on_time_share: float | None = None  # of registrations uploaded within the late-upload bound
    hotels_total: int = 0  # in the registry (the district's)
    hotels_reporting: int = 0  # with at least one registration
    cameras: dict[str, tuple[float, int]] = field(default_factory=dict)  # camera -> (healthy share, frames)


def _median(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 1) if xs else None


def _share(n: int, d: int) -> float | None:
    return round(n / d, 4) if d else None


def kpis(f: Facts, target_s: float) -> dict[str, float | int | None]:
    eps = f.episodes
    handled = [e for e in eps if e.handled_at() is not None]
    in_time = [e for e in handled if (e.handled_at() - e.first_seen).total_seconds() <= target_s]
    gas = [e for e in eps if e.type.startswith("gas-level")]
    frames = sum(n for _, n in f.cameras.values())
    healthy = sum(share * n for share, n in f.cameras.values())
    return {
        "warnings_issued": len(eps),
        "warnings_handled": len(handled),
        "handled_share": _share(len(handled), len(eps)),
        "handled_in_time_share": _share(len(in_time), len(eps)),
        "median_time_to_handle_s": _median([(e.handled_at() - e.first_seen).total_seconds() for e in handled]),
        "median_time_to_close_s": _median([(e.closed_at - e.first_seen).total_seconds() for e in eps if e.closed_at]),
        "registrations": f.registrations,
        "hotels_on_time_share": None if f.on_time_share is None else round(f.on_time_share, 4),
        "hotel_coverage_share": _share(f.hotels_reporting, f.hotels_total),
        "gas_alarms": len(gas),
        "gas_sites_with_alarms": len({e.site or e.device_id for e in gas}),
        "camera_healthy_share": round(healthy / frames, 4) if frames else None,
        "camera_warnings": sum(1 for e in eps if e.type in CAMERA_TYPES),
    }


def build(current: Facts, previous: Facts, start: datetime, end: datetime, district: str | None,
          target_s: float) -> dict:
    """Everything the page shows, as plain data."""
    eps = current.episodes
    by_type_district: dict[tuple[str, str], list[Episode]] = defaultdict(list)
    for e in eps:
        by_type_district[(e.type, e.district or "-")].append(e)
    warnings = [{"type": t, "district": d, "issued": len(es), "handled": sum(1 for e in es if e.handled_at()),
                 "median_time_to_handle_s": _median([(e.handled_at() - e.first_seen).total_seconds()
                                                     for e in es if e.handled_at()])}
                for (t, d), es in sorted(by_type_district.items(), key=lambda kv: (-len(kv[1]), kv[0]))]
    hotels = Counter((e.device_id, e.type) for e in eps if e.type in (HOTEL_LATE, HOTEL_SILENT))
    hotel_rows = sorted({h for h, _ in hotels})
    gas_sites = Counter(e.site or e.device_id for e in eps if e.type.startswith("gas-level"))
    cameras = sorted(((cam, share, n) for cam, (share, n) in current.cameras.items()), key=lambda c: (c[1], c[0]))
    days: dict[str, Counter] = defaultdict(Counter)
    for e in eps:
        days[e.first_seen.date().isoformat()][e.type.split("-")[0]] += 1
    return {
        "period": {"from": start.isoformat(), "to": end.isoformat(), "district": district or "all",
                   "previous_from": (start - (end - start)).isoformat(), "handled_target_s": target_s},
        "kpis": kpis(current, target_s),
        "previous": kpis(previous, target_s),
        "warnings_by_type_and_district": warnings,
        "hotels_late_or_silent": [{"hotel": h, "late_uploads": hotels[(h, HOTEL_LATE)],
                                   "silent": hotels[(h, HOTEL_SILENT)]} for h in
                                  sorted(hotel_rows, key=lambda h: (-(hotels[(h, HOTEL_LATE)] + hotels[(h, HOTEL_SILENT)]), h))],
        "gas_sites_with_alarms": [{"site": s, "alarms": n} for s, n in sorted(gas_sites.items(), key=lambda kv: (-kv[1], kv[0]))],
        "cameras_most_downtime": [{"camera": c, "unhealthy_share": round(1 - share, 4), "frames": n}
                                  for c, share, n in cameras[:10] if share < 1],
        "warnings_per_day": {day: dict(c) for day, c in sorted(days.items())},
    }


# ---------------------------------------------------------------- the page
LABELS = {
    "warnings_issued": ("Warnings issued", "n"), "warnings_handled": ("Warnings handled", "n"),
    "handled_share": ("Handled", "%"), "handled_in_time_share": ("Handled within the target time", "%"),
    "median_time_to_handle_s": ("Median time to handle", "s"), "median_time_to_close_s": ("Median time to close", "s"),
    "registrations": ("Guest registrations", "n"), "hotels_on_time_share": ("Registrations uploaded on time", "%"),
    "hotel_coverage_share": ("Hotels uploading (of registered)", "%"), "gas_alarms": ("Gas alarms", "n"),
    "gas_sites_with_alarms": ("Gas sites with alarms", "n"), "camera_healthy_share": ("Camera frames healthy", "%"),
    "camera_warnings": ("Camera warnings", "n"),
}
COLOURS = {"gas": "#d62728", "watchlist": "#1f77b4", "camera": "#ff7f0e", "hotel": "#2ca02c"}


def _fmt(value, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "%":
        return f"{100 * value:.1f} %"
    if unit == "s":
        return f"{value / 60:.1f} min" if value >= 120 else f"{value:.0f} s"
    return f"{value:,}"


def _trend(now, before, unit: str) -> str:
    if now is None or before is None or now == before:
        return "="
    delta = now - before
    shown = f"{100 * delta:+.1f} pt" if unit == "%" else (f"{delta:+.0f} s" if unit == "s" else f"{delta:+,}")
    return ("▲ " if delta > 0 else "▼ ") + shown


def _bars(per_day: dict[str, dict[str, int]]) -> str:
    """Warnings per day, stacked by kind, as inline SVG."""
    if not per_day:
        return "<p>No warnings in this period.</p>"
    days = list(per_day)
    top = max(sum(c.values()) for c in per_day.values())
    w, h, gap = max(24, 640 // len(days)), 160, 4
    parts = [f'<svg width="{w * len(days) + 40}" height="{h + 40}" role="img" aria-label="warnings per day">']
    for i, day in enumerate(days):
        y = h
        for kind, n in sorted(per_day[day].items()):
            bar = h * n / top
            y -= bar
            parts.append(f'<rect x="{30 + i * w}" y="{y + 10:.1f}" width="{w - gap}" height="{bar:.1f}" '
                         f'fill="{COLOURS.get(kind, "#7f7f7f")}"><title>{html.escape(day)} {html.escape(kind)}: '
                         f'{n}</title></rect>')
        parts.append(f'<text x="{30 + i * w}" y="{h + 28}" font-size="9">{html.escape(day[5:])}</text>')
    parts.append(f'<text x="0" y="18" font-size="10">{top}</text></svg>')
    legend = " ".join(f'<span style="color:{c}">■</span> {k}' for k, c in COLOURS.items())
    return "".join(parts) + f"<p>{legend}</p>"


def _table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    if not rows:
        return "<p>None.</p>"
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(r[k]))}</td>" for k, _ in columns) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if v < 1 else f"{v:,.1f}"
    return "–" if v is None else str(v)


def render_html(report: dict) -> str:
    p, k, prev = report["period"], report["kpis"], report["previous"]
    kpi_rows = "".join(
        f"<tr><td>{html.escape(label)}</td><td class=n>{_fmt(k[key], unit)}</td><td class=n>{_fmt(prev[key], unit)}"
        f"</td><td class=n>{_trend(k[key], prev[key], unit)}</td></tr>" for key, (label, unit) in LABELS.items())
    data = json.dumps(report, ensure_ascii=False).replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>SafeCity governance report {html.escape(p['from'][:10])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:60em}}table{{border-collapse:collapse;margin:.5em 0 1.5em}}
td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:left}}td.n{{text-align:right}}h2{{margin-top:1.5em}}</style>
</head><body>
<h1>SafeCity Stream: governance report</h1>
<p>{html.escape(p['from'])} to {html.escape(p['to'])}, district: {html.escape(p['district'])}; compared with the
period before ({html.escape(p['previous_from'])} onwards). Warnings are leads and alarms for people to verify; no names or
ID numbers appear in this report.</p>
<h2>Key figures</h2>
<table><tr><th></th><th>this period</th><th>previous</th><th>trend</th></tr>{kpi_rows}</table>
<h2>Warnings per day</h2>{_bars(report['warnings_per_day'])}
<h2>Warnings by type and district</h2>
{_table(report['warnings_by_type_and_district'], [('type', 'type'), ('district', 'district'), ('issued', 'issued'),
                                                   ('handled', 'handled'), ('median_time_to_handle_s', 'median time to handle, s')])}
<h2>Hotels that uploaded late or went silent</h2>
{_table(report['hotels_late_or_silent'], [('hotel', 'hotel'), ('late_uploads', 'late uploads'), ('silent', 'went silent')])}
<h2>Gas sites with alarms</h2>
{_table(report['gas_sites_with_alarms'], [('site', 'site or sensor'), ('alarms', 'alarms')])}
<h2>Cameras with the most downtime</h2>
{_table(report['cameras_most_downtime'], [('camera', 'camera'), ('unhealthy_share', 'share of unhealthy frames'),
                                          ('frames', 'frames checked')])}
<script id="report-data" type="application/json">{data}</script>
</body></html>
"""


def previous_period(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    return start - (end - start), start
