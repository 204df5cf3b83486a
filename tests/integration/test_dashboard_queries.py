"""Every panel's InfluxQL query runs against the real InfluxDB, fed by the real pipeline, and
returns data (Grafana itself cannot run here; this is the query half of what it would do)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from dashboards import build
from devices.client import DeviceClient
from devices.simulators import CheckpointSim, GasSensorSim, HotelSim
from models import topics
from models.schemas import GasType
from models.topics import DeviceKind, MessageKind
from tests.integration.harness import influx_query, poll

pytestmark = pytest.mark.integration

PANELS = [(d.uid, p.title, q) for d in build.DASHBOARDS for p in d.panels for q in build.queries(p)
          if p.source == "influxdb"]
STORE_PANELS = [p for d in build.DASHBOARDS for p in d.panels if p.source == "alerts"]
DISTRICT = "dash-district"  # the walls' data for this test is placed here (registry)
#: Panels over measurements that carry no place (dead letters, operators' feedback by rule, notification
#: deliveries): a district shows none of them, All shows them all.
UNPLACED = ("dead_letters", "alert_feedback", "notifications")


def grafana_expand(query: str, district: str = ".*") -> str:
    """What Grafana substitutes before sending a query, on a 1-hour range (district: the variable's
    regex; All is .*): the wall preview's own substitution."""
    from dashboards.preview import expand

    return expand(query, "1h", district)


@pytest.fixture(scope="module")
def city_data(pipeline, settings, registry, api_token):
    rng = random.Random(11)
    now = datetime.now(UTC) - timedelta(minutes=2)
    def at(i: int) -> dict:  # the test city's devices are on the map
        return {"district": DISTRICT, "lat": 31.2 + i / 100, "lon": 121.4 + i / 100}

    leak = GasSensorSim(registry.add("gas", **at(0)), rng)
    leak.start_leak(12.0)
    sims = [CheckpointSim(registry.add("camera", **at(1)), rng), HotelSim(registry.add("hotel", **at(2)), rng),
            GasSensorSim(registry.add("gas", **at(3)), rng, gas=GasType.CO), leak]
    for sim in sims:
        client = DeviceClient(settings.mqtt, sim.kind, sim.device_id).start()
        infos = [client.publish(sim.message, sim.next(now + timedelta(seconds=10 * i))) for i in range(8)]
        if sim is leak:
            bad = topics.device_topic(DeviceKind.GAS, sim.device_id, MessageKind.GAS_READING)
            infos.append(client.publish_raw(bad, b"not json"))
        for info in infos:
            info.wait_for_publish(10)
        client.close()
    # watch lists, data quality, operator feedback, camera health and motion
    from devices.camera import SimulatedCamera
    from models.schemas import PlateColour, PlateRead
    from models.watchlist import Category, VehicleEntry
    from safecity import operator
    from scripts.camera_photos import videos

    cp = registry.add("camera", device_id=f"lead-dash-{rng.randrange(10**6)}", district=DISTRICT)
    operator.import_list(settings, "vehicles", b"test", [VehicleEntry(entry_id=f"dash-{cp}", plate="闽D54321",
                                                                      category=Category.WANTED_VEHICLE)], "tester", "-")
    cam = DeviceClient(settings.mqtt, DeviceKind.CAMERA, cp).start()
    try:
        def hit() -> bool:  # the list reaches every worker within moments: publish until it matches
            info = cam.publish(MessageKind.PLATE_READ, PlateRead(
                read_id=f"r-{datetime.now(UTC).timestamp()}", checkpoint_id=cp, camera_id=f"{cp}-L1", lane=1,
                plate="闽D54321", plate_colour=PlateColour.BLUE, confidence=0.9, captured_at=datetime.now(UTC)))
            info.wait_for_publish(10)
            return bool(influx_query(settings, f"SELECT count(*) FROM watchlist_hits WHERE place = '{cp}'"))

        poll(hit, 60, "a watch-list hit", interval=1.0)
        cam.publish(MessageKind.PLATE_READ, PlateRead(
            read_id="bad", checkpoint_id=cp, camera_id=f"{cp}-L1", lane=1, plate="XX??", confidence=0.3,
            plate_colour=PlateColour.BLUE, captured_at=datetime.now(UTC))).wait_for_publish(10)
        for frame in SimulatedCamera(cp, videos()["bikes"], fps=5).frames(now, count=12):
            cam.publish(MessageKind.FRAME, frame).wait_for_publish(10)
    finally:
        cam.close()
    from tests.integration.test_alerting import act, api

    leads = poll(lambda: [x for x in api(settings, api_token, "GET", "/api/v1/alerts?type=watchlist-*")[1]
                          if x["device_id"] == cp], 60, "the lead in the alert store")
    for lead in leads:  # acknowledged, then closed: the time-to-acknowledge and time-to-close panels
        assert act(settings, api_token, lead["alert_id"], "ack")[0] == 200
        assert act(settings, api_token, lead["alert_id"], "reject", reason="dashboard test")[0] == 200
    for measurement in ("alerts", "data_quality", "alert_feedback", "camera_motion", "alerts_closed",
                        "notifications", "alerts_open"):
        poll(lambda m=measurement: influx_query(settings, f"SELECT count(*) FROM {m}"), 60, f"{measurement} points")
    return sims


@pytest.mark.parametrize(("uid", "title", "query"), PANELS, ids=[f"{u}:{t}" for u, t, _ in PANELS])
def test_panel_query_returns_data(city_data, settings, uid, title, query):
    rows = poll(lambda: influx_query(settings, grafana_expand(query)), 30, f"data for panel {title!r}")
    values = [v for row in rows for k, v in row.items() if k not in ("time", "_tags")]
    assert any(v is not None for v in values)


@pytest.mark.parametrize(("uid", "title", "query"), PANELS, ids=[f"{u}:{t}" for u, t, _ in PANELS])
def test_the_district_variable_filters_the_panel(city_data, settings, uid, title, query):
    """A district no device is in shows nothing; this test's district shows its devices' data (every
    point is tagged with its device's district from the registry)."""
    def values(district: str) -> list:  # zeros count: a district whose devices are all offline shows 0
        rows = influx_query(settings, grafana_expand(query, district))
        return [v for row in rows for k, v in row.items() if k not in ("time", "_tags") and v is not None]

    assert values("nowhere") == []
    if not any(f'"{m}"' in query for m in UNPLACED):
        assert poll(lambda: values(DISTRICT), 30, f"{title!r} for {DISTRICT}")


@pytest.mark.parametrize("time_range", ["5m", "24h"])
def test_open_alerts_now_equals_the_stores_open_alerts_on_any_range(city_data, settings, api_token, time_range):
    """The wall's "Open alerts now" is the store's count at that moment, whatever range the wall shows
    (a count of transitions in the range would be wrong on both)."""
    from tests.integration.test_alerting import api

    panel = next(p for p in build.CITY.panels if p.title == "Open alerts now")

    def store_count() -> int:
        status, rows = api(settings, api_token, "GET", "/api/v1/alerts?status=firing,acknowledged&limit=5000")
        assert status == 200
        return len(rows)

    def agreed():  # the snapshot is written every second here: wait until it has caught up with the store
        before = store_count()
        query = build.queries(panel)[0].replace("$timeFilter", f"time > now() - {time_range}").replace(
            "$district", ".*")
        rows = influx_query(settings, query)
        shown = int(rows[0]["sum"]) if rows else 0
        return (before, shown) if before == shown == store_count() else None

    count, shown = poll(agreed, 30, f"the open-alert count on a {time_range} range")
    assert count > 0  # the test city has open alerts (its gas leak at least)


def test_the_wall_preview_draws_each_panel_from_its_own_query(city_data, settings, tmp_path):
    """`python -m dashboards.preview` (the walls without Grafana): one PNG per wall, each panel drawn
    with exactly the values its query returns for the district."""
    from dashboards import preview

    def expected(panel) -> int:
        return sum(1 for q in build.queries(panel)
                   for row in influx_query(settings, grafana_expand(q, DISTRICT))
                   for k, v in row.items() if k not in ("time", "_tags") and v is not None and not isinstance(v, str))

    placed = [(d.uid, p.title) for d in build.DASHBOARDS for p in d.panels
              if not any(f'"{m}"' in q for q in build.queries(p) for m in UNPLACED)]

    def drawn_all():  # a snapshot panel may be between two snapshots: draw again until all have data
        drawn = preview.preview(settings.influx, settings.alerts.db_url.get_secret_value(), tmp_path, "1h",
                                DISTRICT)
        return drawn if all(drawn[uid][title] for uid, title in placed) else None

    drawn = poll(drawn_all, 60, "every placed panel drawn with data")
    for dash in build.DASHBOARDS:
        assert (tmp_path / f"{dash.uid}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        for panel in dash.panels:
            if panel.kind != "timeseries":  # snapshots and tables: what the query returns now
                continue
            assert drawn[dash.uid][panel.title] == expected(panel), panel.title


def store_query(settings, sql: str, district: str = ".*") -> list[dict]:
    """A store panel's rows as Grafana would get them (the preview's own reader)."""
    from dashboards.preview import store_rows

    return store_rows(settings.alerts.db_url.get_secret_value(), grafana_expand(sql, district))


def test_the_alert_store_panels_show_the_stores_open_alerts(city_data, settings, api_token):
    """The second data source (PostgreSQL, the alert_board view): the wall's alert table has exactly the
    store's open alerts, filtered by the district variable; the open-alert map places those with
    coordinates."""
    from tests.integration.test_alerting import api

    table = next(p for p in STORE_PANELS if p.kind == "table")
    geo = next(p for p in STORE_PANELS if p.kind == "geomap")

    def agreed():
        status, open_alerts = api(settings, api_token, "GET", "/api/v1/alerts?status=firing,acknowledged&limit=5000")
        rows = store_query(settings, table.query)
        want = sorted((a["type"], a["place"].get("site") or a["device_id"], a["status"]) for a in open_alerts)
        return rows if sorted((r["type"], r["site"], r["status"]) for r in rows) == want else None

    rows = poll(agreed, 30, "the wall's alert table equal to the store's open alerts")
    ranks = [list(build.SEVERITY_COLOURS).index(r["severity"]) for r in rows]
    assert ranks == sorted(ranks)  # worst first
    mine = store_query(settings, table.query, DISTRICT)
    assert mine and all(r["district"] == DISTRICT for r in mine)
    assert store_query(settings, table.query, "nowhere") == []
    placed = store_query(settings, geo.query, DISTRICT)
    assert placed and all(r["latitude"] and r["longitude"] for r in placed)
    assert {(round(r["latitude"], 4), round(r["longitude"], 4)) for r in placed} <= {
        (round(31.2 + i / 100, 4), round(121.4 + i / 100, 4)) for i in range(4)}


def test_the_walls_reader_sees_the_alert_board_and_nothing_else(city_data, settings):
    """Grafana's user of the alert store (safecity_reader) reads the view, never the users, sessions or
    the records' evidence (migration 0003 grants the view only)."""
    import importlib

    import psycopg

    migration = importlib.import_module("alerting.migrations.versions.0003_alert_board_view")
    owner = settings.alerts.db_url.get_secret_value().replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(owner, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (migration.READER,)).fetchone()
        if not exists:
            conn.execute(f"CREATE ROLE {migration.READER} LOGIN PASSWORD 'reader-pw'")
        conn.execute(migration.GRANT_READER)
    reader = owner.split("://")[0] + "://" + migration.READER + ":reader-pw@" + owner.split("@", 1)[1]
    with psycopg.connect(reader, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM alert_board").fetchone()[0] > 0
        for table in ("users", "sessions", "alerts", "outbox"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT * FROM {table} LIMIT 1")


def test_the_alert_annotations_mark_firing_alerts_in_the_district(city_data, settings):
    query = build.ANNOTATION["query"]
    rows = poll(lambda: influx_query(settings, grafana_expand(query, DISTRICT)), 30, "annotations")
    assert rows and all(r["type"] and r["severity"] for r in rows)
    assert influx_query(settings, grafana_expand(query, "nowhere")) == []
