"""Kafka stopped and started again under a steady stream: every reading the broker acknowledged
ends up in Kafka, once the bridge has ridden out the outage. (Named to run last: it restarts the
session's Kafka under every other process.)"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from deploy import services
from devices.client import DeviceClient
from models import schemas, topics
from models.schemas import GasReading, GasType, GasUnit
from models.topics import DeviceKind, MessageKind
from processors.watchlists import scan_recent
from safecity.health import probe
from tests.integration.harness import events_of

pytestmark = pytest.mark.integration
OUTAGE_S = 60  # as the issue asks; longer than the producer's 30 s request timeout: sends fail and are resent


def test_kafka_outage_loses_no_acknowledged_reading(pipeline, settings, registry, receivers):
    sensor = registry.add("gas", interval_s=3600)
    kafka = next(s for s in services.local_services(settings) if s.name == "kafka")
    client = DeviceClient(settings.mqtt, DeviceKind.GAS, sensor).start()
    acked: list[int] = []
    published = [0]
    stop = threading.Event()
    t0 = datetime.now(UTC) - timedelta(minutes=30)
    began = datetime.now(UTC) - timedelta(seconds=5)

    def publish() -> None:  # 20 readings/s until told to stop; a reading counts once the broker has it
        seq = 0
        while not stop.is_set():
            info = client.publish(MessageKind.GAS_READING, GasReading(
                sensor_id=sensor, gas=GasType.COMBUSTIBLE, value=1.0, unit=GasUnit.LEL,
                measured_at=t0 + timedelta(seconds=seq), seq=seq))
            info.wait_for_publish(10)
            if info.is_published():
                acked.append(seq)
            seq += 1
            published[0] = seq
            time.sleep(0.05)

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    try:
        time.sleep(3)
        kafka.stop()
        time.sleep(OUTAGE_S)
        assert pipeline["ingest"].proc.poll() is None, "ingest gave up during the outage"
        ok, report = probe(pipeline["ingest"].health_url)  # the bridge's health says Kafka is away
        assert not ok and report["checks"]["kafka"]["ok"] is False and report["checks"]["kafka"]["outage_s"] > 10
        assert report["checks"]["mqtt"]["ok"] is True
        kafka.start()
        back = time.monotonic()
        time.sleep(3)
    finally:
        stop.set()
        publisher.join(30)
        client.close()
    assert len(acked) > OUTAGE_S * 10

    def all_in_kafka() -> set[int]:  # every record of the topic since the test began, to its end now
        topic = topics.KAFKA_TOPICS[MessageKind.GAS_READING]
        records = asyncio.run(scan_recent(settings.kafka, topic, began))
        return {schemas.decode_as(GasReading, v).seq for record in records for k, v in events_of(topic, *record)
                if k == sensor.encode()}

    deadline = time.monotonic() + 120
    seen: set[int] = set()
    while time.monotonic() < deadline:
        seen = all_in_kafka()
        if set(acked) <= seen:
            break
        time.sleep(2)
    in_kafka_after = time.monotonic() - back
    missing = sorted(set(acked) - seen)
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged readings never reached Kafka: {missing[:10]}"
    log = pipeline["ingest"].log.read_text(errors="replace")
    assert "Kafka is back after" in log
    outage_lines = [line for line in log.splitlines() if " aiokafka" in line]
    assert len(outage_lines) < 200, f"{len(outage_lines)} aiokafka log lines: the outage flooded the log"

    # and the alarm path is back: a new alarm after the outage reaches its receiver
    from tests.integration.harness import poll, record_fault
    from tests.integration.test_alerting import QUIET, leak

    http, _ = receivers
    alarm = registry.add("gas", device_id=f"esc-{sensor[-8:]}", site="after-outage", **QUIET)
    leak(settings, alarm).close()
    poll(lambda: http.where("/hook/duty", f"gas-level-1:{alarm}"), 180, "an alarm notified after the outage")
    assert all(pipeline[p].proc.poll() is None for p in ("ingest", "worker", "alerter", "metrics"))
    for name in ("ingest", "worker", "alerter", "metrics"):  # and every process says it is healthy again
        poll(lambda: probe(pipeline[name].health_url)[0], 60, f"{name} healthy after the outage")
    notified = len(http.where("/hook/duty", f"gas-level-1:{alarm}"))
    record_fault(fault=f"Kafka stopped {OUTAGE_S} s under 20 readings/s", published=published[0],
                 acknowledged=len(acked), in_kafka=len(set(acked) & seen), alerts_expected=1, notified=notified,
                 duplicates=notified - 1,
                 recovery=f"every acknowledged reading in Kafka {in_kafka_after:.0f} s after Kafka was back; "
                          f"the next alarm notified {time.monotonic() - back:.0f} s after")
