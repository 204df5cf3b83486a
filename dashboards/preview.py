"""A preview of the walls without Grafana: each panel's own InfluxQL query, run against InfluxDB as
Grafana would send it, drawn with matplotlib into one PNG per wall. A look at the content (is there
data, does the district filter it, do the legends read), not a Grafana replacement.

    python -m dashboards.preview --out previews/ [--range 1h] [--district xuhui]

Settings as everywhere (SAFECITY_INFLUX__URL, ...). Needs matplotlib (the test extras)."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from alerting.report_facts import influxql
from dashboards import build
from models.settings import InfluxSettings, load_settings



@dataclass
class Series:
    name: str
    times: list[datetime] = field(default_factory=list)
    values: list[float | None] = field(default_factory=list)


def expand(query: str, time_range: str, district: str) -> str:
    """What Grafana substitutes before sending a query (InfluxQL, or the alert store's SQL)."""
    return (query.replace("$timeFilter", f"time > now() - {time_range}").replace("$__interval", "10s")
            .replace("${district:regex}", district).replace("$district", district))


def series_of(rows: list[dict], legend: str) -> list[Series]:
    """Rows of one query as named series, named as the wall names them (``build.legend``: the
    ``$tag_x`` of its GROUP BY filled in); a second value column adds its name."""
    out: dict[str, Series] = {}
    for row in rows:
        tags = row.get("_tags") or {}
        name = legend
        for tag, value in tags.items():
            name = name.replace(f"$tag_{tag}", str(value))
        columns = [c for c, v in row.items() if c not in ("time", "_tags") and not isinstance(v, (str, datetime))]
        for column in columns:
            key = f"{name} {column}" if len(columns) > 1 else name
            s = out.setdefault(key, Series(key))
            s.times.append(datetime.fromisoformat(row["time"])
                           if isinstance(row.get("time"), str) else None)
            s.values.append(row[column])
    return list(out.values())


@dataclass
class PanelData:
    series: list[Series] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    missing: str = ""  # why there is nothing to draw (not "no data")


def store_rows(store_url: str | None, sql: str) -> list[dict]:
    import sqlalchemy as sa

    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text(sql.replace(":", "\\:")))]
    finally:
        engine.dispose()


def panel_data(influx: InfluxSettings, store_url: str | None, panel: build.Panel, time_range: str,
               district: str) -> PanelData:
    data = PanelData()
    for i, q in enumerate(build.queries(panel)):
        if panel.source == "alerts":
            if not (store_url or "").startswith("postgresql"):
                return PanelData(missing="the alert store's panels read PostgreSQL (production); "
                                         "the embedded SQLite store is shown by the console")
            rows = store_rows(store_url, expand(q, time_range, district))
        else:
            rows = influxql(influx, expand(q, time_range, district))
        data.rows += [r | r.get("_tags", {}) for r in rows]
        data.series += series_of(rows, build.legend(panel, i, q))
    return data


def _title(text: str) -> str:
    return re.sub(r"\s+", " ", text)[:60]


GRAFANA_COLOURS = {"green": "#73bf69", "orange": "#ff9830", "red": "#f2495c"}


def _threshold_colour(panel: build.Panel, value: float) -> str:
    """The colour Grafana gives a stat: the last threshold step at or below the value."""
    colour = "#d8d9da"
    for name, start in panel.thresholds:
        if start is None or value >= start:
            colour = GRAFANA_COLOURS.get(name, name)
    return colour


def draw_wall(dash: build.Dashboard, data: dict[str, PanelData], out: Path) -> dict[str, int]:
    """One PNG for the wall, panels on Grafana's 24-column grid; returns the values drawn per panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    layout = build.render(dash)["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in layout)
    fig = plt.figure(figsize=(24, rows * 0.45), facecolor="#111217")
    grid = fig.add_gridspec(rows, 24, hspace=1.6, wspace=0.8, top=0.97, bottom=0.02, left=0.03, right=0.99)
    drawn: dict[str, int] = {}
    for panel, spec in zip(dash.panels, layout, strict=True):
        g = spec["gridPos"]
        ax = fig.add_subplot(grid[g["y"]:g["y"] + g["h"], g["x"]:g["x"] + g["w"]])
        ax.set_facecolor("#181b1f")
        ax.set_title(_title(panel.title), color="#d8d9da", fontsize=10, loc="left")
        for spine in ax.spines.values():
            spine.set_color("#2c3235")
        ax.tick_params(colors="#8e8e8e", labelsize=7)
        pd = data[panel.title]
        series = pd.series
        values = [v for s in series for v in s.values if v is not None]
        drawn[panel.title] = len(pd.rows) if panel.kind in ("geomap", "table") else len(values)
        if pd.missing or not (values or pd.rows):
            ax.text(0.5, 0.5, pd.missing or "No data", color="#8e8e8e", ha="center", va="center",
                    transform=ax.transAxes, wrap=True, fontsize=8)
            ax.set_xticks([]), ax.set_yticks([])
        elif panel.kind == "geomap":
            points = [r for r in pd.rows if r.get("latitude") is not None and r.get("longitude") is not None]
            drawn[panel.title] = len(points)
            colours = [build.SEVERITY_COLOURS.get(r.get("severity"), "#73bf69" if r.get("online") else "#8e8e8e")
                       for r in points]
            ax.scatter([r["longitude"] for r in points], [r["latitude"] for r in points], c=colours, s=18)
            ax.set_aspect("equal", adjustable="datalim")
        elif panel.kind == "table":
            columns = [c for c in pd.rows[0] if c not in ("_tags", "time")][:8]
            cells = [[str(r.get(c, ""))[:19] for c in columns] for r in pd.rows[:10]]
            ax.axis("off")
            table = ax.table(cellText=cells, colLabels=columns, loc="upper left", cellLoc="left")
            table.set_fontsize(7)
            for cell in table.get_celld().values():
                cell.set_facecolor("#181b1f"), cell.set_edgecolor("#2c3235"), cell.get_text().set_color("#d8d9da")
        elif panel.kind == "stat":
            ax.text(0.5, 0.45, f"{values[-1]:g}", color=_threshold_colour(panel, values[-1]), fontsize=36,
                    ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([]), ax.set_yticks([])
        elif panel.kind == "bargauge":
            items = [(s.name, s.values[-1]) for s in series if s.values and s.values[-1] is not None][:12]
            colours = [build.SEVERITY_COLOURS.get(name, "#5794f2") for name, _ in items]
            ax.barh([name[:28] for name, _ in items], [v for _, v in items], color=colours)
            ax.invert_yaxis()
        else:
            for s in series[:12]:
                points = [(t, v) for t, v in zip(s.times, s.values, strict=True) if t is not None and v is not None]
                if points:
                    ax.plot([t for t, _ in points], [v for _, v in points], label=s.name[:30], linewidth=1.2)
            ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
            if len(series) > 1:
                ax.legend(fontsize=6, loc="upper left", facecolor="#181b1f", labelcolor="#d8d9da", framealpha=0.6)
        if panel.unit not in ("short", "none"):
            ax.set_xlabel(panel.unit, color="#8e8e8e", fontsize=7)
    fig.suptitle(dash.title, color="#d8d9da", fontsize=14, x=0.01, ha="left")
    fig.savefig(out, dpi=60, facecolor=fig.get_facecolor(), bbox_inches="tight")
    plt.close(fig)
    return drawn


def preview(influx: InfluxSettings, store_url: str | None, out_dir: Path, time_range: str = "1h",
            district: str = ".*") -> dict[str, dict[str, int]]:
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {}
    for dash in build.DASHBOARDS:
        data = {p.title: panel_data(influx, store_url, p, time_range, district) for p in dash.panels}
        result[dash.uid] = draw_wall(dash, data, out_dir / f"{dash.uid}.png")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("previews"))
    parser.add_argument("--range", default="1h", help="the walls' time range (InfluxQL duration: 5m, 1h, 24h)")
    parser.add_argument("--district", default=".*", help="the district variable (a name; default: All)")
    args = parser.parse_args()
    if not re.fullmatch(r"\d+[smhdw]", args.range):
        parser.error("--range is an InfluxQL duration such as 15m, 1h or 24h")
    district = args.district if args.district == ".*" else re.escape(args.district)
    from alerting.service import store_url

    settings = load_settings()
    for uid, drawn in preview(settings.influx, store_url(settings), args.out, args.range, district).items():
        empty = [t for t, n in drawn.items() if not n]
        print(f"{args.out / uid}.png: {len(drawn)} panels" + (f", no data in: {', '.join(empty)}" if empty else ""))


if __name__ == "__main__":
    main()
