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

PANELS = [(d.uid, p.title, q) for d in build.DASHBOARDS for p in d.panels for q in build.queries(p)]
DISTRICT = "dash-district"  # the walls' data for this test is placed here (registry)
#: Panels over measurements that carry no place (dead letters, operators' feedback by rule, notification
#: deliveries): a district shows none of them, All shows them all.
UNPLACED = ("dead_letters", "alert_feedback", "notifications")


def grafana_expand(query: str, district: str = ".*") -> str:
    """What Grafana substitutes before sending an InfluxQL query (district: the variable's regex; All is .*)."""
    return (query.replace("$timeFilter", "time > now() - 1h").replace("$__interval", "10s")
            .replace("$district", district))


@pytest.fixture(scope="module")
def city_data(pipeline, settings, registry, api_token):
    rng = random.Random(11)
    now = datetime.now(UTC) - timedelta(minutes=2)
    leak = GasSensorSim(registry.add("gas", district=DISTRICT), rng)
    leak.start_leak(12.0)
    sims = [CheckpointSim(registry.add("camera", district=DISTRICT), rng),
            HotelSim(registry.add("hotel", district=DISTRICT), rng),
            GasSensorSim(registry.add("gas", district=DISTRICT), rng, gas=GasType.CO), leak]
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
