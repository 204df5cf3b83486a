"""Two workers share the partitions; when one dies, the other takes over its sensors' state
without losing readings or notifying an alarm twice."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from devices.client import DeviceClient
from models import topics
from models.schemas import GasReading, GasType, GasUnit
from models.topics import DeviceKind, MessageKind
from tests.integration.conftest import WORKER_READY
from tests.integration.harness import MqttProbe, Process, influx_query, partition_of, poll, record_fault, settled

pytestmark = pytest.mark.integration


def sensors_on_every_partition(partitions: int, per_partition: int = 2) -> list[str]:
    import uuid

    chosen: dict[int, list[str]] = {p: [] for p in range(partitions)}
    while any(len(v) < per_partition for v in chosen.values()):
        candidate = f"gas-fo-{uuid.uuid4().hex[:8]}"
        bucket = chosen[partition_of(candidate, partitions)]
        if len(bucket) < per_partition:
            bucket.append(candidate)
    return [s for v in chosen.values() for s in v]


def test_second_worker_fails_over_without_loss_or_repeat(pipeline, settings, registry, stack_env):
    # by construction on every partition, so whichever worker dies held some of them
    sensors = [registry.add("gas", device_id=s, interval_s=3600)
               for s in sensors_on_every_partition(settings.kafka.partitions)]
    second = Process(["worker"], stack_env | {"SAFECITY_WORKER__DATA_DIR": str(settings.services.run_dir / "worker-2")},
                     settings.services.run_dir / "worker-2.log", WORKER_READY).start(120)  # its own table store
    probe = MqttProbe(settings, f"{topics.PREFIX}/alerts/gas-level-1/#")
    clients = {s: DeviceClient(settings.mqtt, DeviceKind.GAS, s).start() for s in sensors}
    t0 = datetime.now(UTC) - timedelta(minutes=4)

    def send(i: int, value: float) -> None:
        for s, c in clients.items():
            c.publish(MessageKind.GAS_READING, GasReading(sensor_id=s, gas=GasType.COMBUSTIBLE, value=value,
                                                          unit=GasUnit.LEL, measured_at=t0 + timedelta(seconds=10 * i),
                                                          seq=i)).wait_for_publish(10)

    try:
        for i, v in enumerate([2, 30, 31]):
            send(i, v)
        fired = [probe.next_json(90) for _ in sensors]
        assert {a["device_id"] for a in fired} == set(sensors) and {a["state"] for a in fired} == {"firing"}

        second.kill()  # one of the two workers dies mid-alarm; the survivor takes its partitions
        killed = time.monotonic()
        for i, v in enumerate([33, 32, 5, 5, 5, 5, 5, 5, 5], start=3):
            send(i, v)
        cleared: list[dict] = []
        try:
            while len(cleared) < len(sensors):
                cleared.append(probe.next_json(300))
        except AssertionError:
            missing = sorted(set(sensors) - {a["device_id"] for a in cleared})
            raise AssertionError(f"no clear for {[(s, partition_of(s, settings.kafka.partitions)) for s in missing]}"
                                 f" within 300 s of the kill") from None
        recovered = time.monotonic() - killed
        assert {a["device_id"] for a in cleared} == set(sensors) and {a["state"] for a in cleared} == {"cleared"}
        # the survivor has done every reading, and the alert service every alert (the others' late
        # repeats included: they travel on other partitions than the sentinel's) ...
        settled(settings, settings.worker.app_id, topics.KAFKA_TOPICS[MessageKind.GAS_READING])
        settled(settings, settings.worker.app_id, topics.KAFKA_URGENT[MessageKind.GAS_READING])  # 30, 31, 33, 32
        settled(settings, settings.alerts.group_id, topics.KAFKA_ALERTS)
        # ... then a sentinel: a new alarm through the same path; nothing about the others may come before it
        sentinel = registry.add("gas", interval_s=3600)
        c = DeviceClient(settings.mqtt, DeviceKind.GAS, sentinel).start()
        for i, v in enumerate([30, 31]):
            c.publish(MessageKind.GAS_READING, GasReading(
                sensor_id=sentinel, gas=GasType.COMBUSTIBLE, value=v, unit=GasUnit.LEL,
                measured_at=datetime.now(UTC) - timedelta(seconds=20 - 10 * i), seq=i)).wait_for_publish(10)
        c.close()
        before = []
        while (msg := probe.next_json(120))["device_id"] != sentinel:
            before.append(msg)
        assert before == [], f"notified twice: {[(m['device_id'], m['status']) for m in before]}"
        record_fault(fault=f"one of two workers SIGKILLed mid-alarm ({len(sensors)} sensors on all partitions)",
                     published=12 * len(sensors), acknowledged="-", in_kafka="-", alerts_expected=2 * len(sensors),
                     notified=len(fired) + len(cleared), duplicates=len(before),
                     recovery=f"every alarm cleared (on MQTT) {recovered:.0f} s after the kill, rebalance included")
        for s in sensors:
            poll(lambda s=s: len(influx_query(settings, f"SELECT value FROM gas WHERE sensor_id = '{s}'")) == 12, 60,
                 f"every reading of {s}")
    finally:
        second.stop()
        for c in clients.values():
            c.close()
        probe.close()
