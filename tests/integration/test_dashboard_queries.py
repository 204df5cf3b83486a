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


def grafana_expand(query: str) -> str:
    """What Grafana substitutes before sending an InfluxQL query."""
    return query.replace("$timeFilter", "time > now() - 1h").replace("$__interval", "10s")


@pytest.fixture(scope="module")
def city_data(pipeline, settings, registry):
    rng = random.Random(11)
    now = datetime.now(UTC) - timedelta(minutes=2)
    leak = GasSensorSim(registry.add("gas"), rng)
    leak.start_leak(12.0)
    sims = [CheckpointSim(registry.add("camera"), rng), HotelSim(registry.add("hotel"), rng),
            GasSensorSim(registry.add("gas"), rng, gas=GasType.CO), leak]
    for sim in sims:
        client = DeviceClient(settings.mqtt, sim.kind, sim.device_id).start()
        infos = [client.publish(sim.message, sim.next(now + timedelta(seconds=10 * i))) for i in range(8)]
        if sim is leak:
            bad = topics.device_topic(DeviceKind.GAS, sim.device_id, MessageKind.GAS_READING)
            infos.append(client.publish_raw(bad, b"not json"))
        for info in infos:
            info.wait_for_publish(10)
        client.close()
    poll(lambda: influx_query(settings, f"SELECT count(*) FROM alerts WHERE device_id = '{leak.device_id}'"),
         60, "the leak's alert to reach InfluxDB")
    return sims


@pytest.mark.parametrize(("uid", "title", "query"), PANELS, ids=[f"{u}:{t}" for u, t, _ in PANELS])
def test_panel_query_returns_data(city_data, settings, uid, title, query):
    rows = poll(lambda: influx_query(settings, grafana_expand(query)), 30, f"data for panel {title!r}")
    values = [v for row in rows for k, v in row.items() if k not in ("time", "_tags")]
    assert any(v is not None for v in values)
