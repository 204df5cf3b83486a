"""Runs a fleet of simulated devices, each with its own MQTT connection, until stopped."""

from __future__ import annotations

import heapq
import logging
import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from devices.client import DeviceClient
from devices.simulators import CheckpointSim, GasSensorSim, HotelSim, Simulator
from models.schemas import GasType
from models.settings import MqttSettings
from models.topics import PREFIX

logger = logging.getLogger(__name__)

# What a misbehaving device sends now and then (the demo shows them arriving as dead letters).
MALFORMED = (
    ("{kind}/{id}/{message}", b'{"not": "json"'),
    ("{kind}/{id}/{message}", b'{"sensor_id": "{id}", "gas": "combustible", "value": "high"}'),
    ("{kind}/{id}/telemetry", b"{}"),
)


@dataclass(frozen=True)
class FleetSpec:
    checkpoints: int = 3
    hotels: int = 5
    gas_sensors: int = 12
    rate: float = 1.0  # multiplies every device's publishing rate
    malformed_fraction: float = 0.0
    seed: int = 7
    snapshots: bool = True
    wanted_plates: tuple[str, ...] = ()
    wanted_ids: tuple[str, ...] = ()
    wanted_rate: float = 0.0
    leak_probability: float = 0.0005  # per gas reading: a calm city, where an incident stands out


def build_fleet(spec: FleetSpec) -> list[Simulator]:
    rng = random.Random(spec.seed)
    sims: list[Simulator] = []
    for i in range(spec.checkpoints):
        sims.append(CheckpointSim(f"cp-{i + 1:03d}", random.Random(rng.random()), snapshots=spec.snapshots,
                                  wanted=spec.wanted_plates, wanted_rate=spec.wanted_rate))
    for i in range(spec.hotels):
        sims.append(HotelSim(f"hotel-{i + 1:03d}", random.Random(rng.random()), wanted_ids=spec.wanted_ids,
                             wanted_rate=spec.wanted_rate))
    for i in range(spec.gas_sensors):
        gas = GasType.CO if i % 4 == 3 else GasType.COMBUSTIBLE
        sims.append(GasSensorSim(f"gas-{i + 1:03d}", random.Random(rng.random()), gas=gas, period_s=2.0,
                                 leak_probability=spec.leak_probability))
    for sim in sims:
        sim.period_s /= spec.rate
    return sims


DISTRICT_CENTRES = {"xuhui": (31.188, 121.437), "jingan": (31.229, 121.448), "pudong": (31.221, 121.544),
                    "huangpu": (31.231, 121.484)}  # the demo city's districts (Shanghai's, roughly)
GRID_DEG = 0.01  # grid cells of about 1 km


def registry_for(spec: FleetSpec) -> dict:
    """A device registry listing the fleet, placed on the map: gas sensors two to a building (so
    alarms correlate, and a building is in one district), each device near its district's centre."""
    districts = tuple(DISTRICT_CENTRES)
    rng = random.Random(spec.seed + 7)
    devices = []
    for i, sim in enumerate(build_fleet(spec)):
        district = districts[(i // 2 if isinstance(sim, GasSensorSim) else i) % len(districts)]
        entry: dict = {"id": sim.device_id, "kind": sim.kind.value, "district": district}
        lat0, lon0 = DISTRICT_CENTRES[district]
        if isinstance(sim, GasSensorSim):
            site = f"bldg-{i // 2:03d}"
            site_rng = random.Random(f"{spec.seed}-{site}")  # both sensors of a building in one place
            lat, lon = lat0 + site_rng.uniform(-0.012, 0.012), lon0 + site_rng.uniform(-0.012, 0.012)
            lat, lon = lat + rng.uniform(-0.0002, 0.0002), lon + rng.uniform(-0.0002, 0.0002)
            entry |= {"site": site, "interval_s": round(sim.period_s * 2, 3)}
        else:
            lat, lon = lat0 + rng.uniform(-0.015, 0.015), lon0 + rng.uniform(-0.015, 0.015)
        entry |= {"lat": round(lat, 6), "lon": round(lon, 6),
                  "grid": f"{district}-{int((lat - lat0) / GRID_DEG + 2)}{int((lon - lon0) / GRID_DEG + 2)}"}
        devices.append(entry)
    return {"devices": devices}


def run_fleet(settings: MqttSettings, spec: FleetSpec, stop: threading.Event,
              duration: float | None = None) -> dict[str, int]:
    """Publish until ``stop`` is set (or ``duration`` passes); return messages sent per kind."""
    sims = build_fleet(spec)
    clients = {sim.device_id: DeviceClient(settings, sim.kind, sim.device_id).start() for sim in sims}
    rng = random.Random(spec.seed + 1)
    sent: dict[str, int] = {}
    start = time.monotonic()
    queue = [(start + rng.uniform(0, sim.period_s), i) for i, sim in enumerate(sims)]
    heapq.heapify(queue)
    try:
        while queue and not stop.is_set():
            due, i = heapq.heappop(queue)
            if duration is not None and due - start > duration:
                break
            stop.wait(max(0.0, due - time.monotonic()))
            sim = sims[i]
            client = clients[sim.device_id]
            if spec.malformed_fraction and rng.random() < spec.malformed_fraction:
                template, body = rng.choice(MALFORMED)
                topic = f"{PREFIX}/" + template.format(kind=sim.kind, id=sim.device_id, message=sim.message)
                client.publish_raw(topic, body.replace(b"{id}", sim.device_id.encode()))
                sent["malformed"] = sent.get("malformed", 0) + 1
            else:
                client.publish(sim.message, sim.next(datetime.now(UTC)))
                sent[sim.message.value] = sent.get(sim.message.value, 0) + 1
            heapq.heappush(queue, (due + sim.period_s * rng.uniform(0.8, 1.2), i))
    finally:
        for client in clients.values():
            client.close()
    return sent
