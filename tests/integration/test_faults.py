"""Faults on the real servers: the alarm path keeps flowing, and nothing acknowledged is lost."""

from __future__ import annotations

import time
import uuid

import pytest

from deploy import services
from safecity.health import probe
from tests.integration.harness import influx_query, poll, record_fault
from tests.integration.test_alerting import QUIET, leak

pytestmark = pytest.mark.integration
OUTAGE_S = 60


def test_influxdb_down_delays_only_the_metrics(pipeline, settings, registry, receivers):
    http, _ = receivers
    influx = next(s for s in services.local_services(settings) if s.name == "influxdb")
    sensor = registry.add("gas", device_id=f"esc-{uuid.uuid4().hex[:6]}", site="fault-site", **QUIET)
    alert_id = f"gas-level-1:{sensor}"
    log = pipeline["metrics"].log
    offset = log.stat().st_size
    influx.stop()
    try:
        started = time.monotonic()
        leak(settings, sensor, (30.0, 31.0, 32.0, 33.0, 34.0)).close()
        poll(lambda: http.where("/hook/duty", alert_id), 30, "the alarm's notification while InfluxDB is down")
        latency = time.monotonic() - started
        poll(lambda: b"InfluxDB not taking writes" in log.read_bytes()[offset:], 60, "the writer to notice")
        ok, report = probe(pipeline["metrics"].health_url)  # the writer's health says why it holds back
        assert not ok and report["checks"]["influxdb"]["ok"] is False and report["checks"]["kafka"]["ok"] is True
        (worker_ok, worker), (alerter_ok, alerter) = probe(pipeline["worker"].health_url), \
            probe(pipeline["alerter"].health_url)
        assert worker_ok and alerter_ok, (worker, alerter)  # the reports say why not
        time.sleep(max(0.0, started + OUTAGE_S - time.monotonic()))  # a minute-long outage
        assert pipeline["worker"].proc.poll() is None and pipeline["alerter"].proc.poll() is None
    finally:
        influx.start()
        back = time.monotonic()
    assert latency < 15, f"alarm took {latency:.1f}s with InfluxDB down"
    # the backlog waited in Kafka and is written now: every reading, once
    rows = poll(lambda: (r := influx_query(settings, f"SELECT value FROM gas WHERE sensor_id = '{sensor}'"))
                and len(r) == 5 and r, 90, "the readings' metrics after InfluxDB is back")
    assert sorted(r["value"] for r in rows) == [30.0, 31.0, 32.0, 33.0, 34.0]
    assert probe(pipeline["metrics"].health_url)[0]
    # the duty route reminds every 4 s while the alarm is open: the alarm itself is the "new" delivery
    notified = len([r for r in http.where("/hook/duty", alert_id) if r.body["reason"] == "new"])
    record_fault(fault=f"InfluxDB stopped {OUTAGE_S} s while a gas alarm fires", published=5, acknowledged="-", in_kafka=len(rows),
                 alerts_expected=1, notified=notified, duplicates=notified - 1,
                 recovery=f"alarm notified in {latency:.1f} s during the outage; all metrics written "
                          f"{time.monotonic() - back:.1f} s after InfluxDB was back")


def test_a_broker_restart_loses_nothing_the_broker_acknowledged(pipeline, settings, registry):
    """Readings the broker acknowledged while ingest was away wait in ingest's persistent session;
    they survive a broker restart (persistence written by the user Mosquitto runs as)."""
    from datetime import UTC, datetime, timedelta

    sensor = registry.add("gas", **QUIET)
    mosquitto = next(s for s in services.local_services(settings) if s.name == "mosquitto")
    pipeline["ingest"].stop()
    try:
        leak(settings, sensor, tuple(float(v % 7) for v in range(40)),
             start=datetime.now(UTC) - timedelta(minutes=10)).close()  # each acknowledged by the broker
        mosquitto.stop()
        mosquitto.start()
    finally:
        pipeline["ingest"].start()
        restarted = time.monotonic()
    assert b"Permission denied" not in (mosquitto.logfile.read_bytes())
    poll(lambda: len(influx_query(settings, f"SELECT value FROM gas WHERE sensor_id = '{sensor}'")) == 40, 90,
         "all 40 readings, after the broker restart")
    record_fault(fault="Mosquitto restarted while ingest was away", published=40, acknowledged="-", in_kafka=40,
                 alerts_expected=0, notified=0, duplicates=0,
                 recovery=f"all 40 readings stored {time.monotonic() - restarted:.1f} s after the restart")


def big_snapshot() -> bytes:
    """A real photograph at 1080p, as a checkpoint's full-frame snapshot (~390 KB of JPEG)."""
    import cv2

    from scripts.camera_photos import photos

    ok, data = cv2.imencode(".jpg", cv2.resize(photos()["motorcycle"], (1920, 1080)), [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok and 300_000 < len(data) < 512 * 1024
    return data.tobytes()


def test_a_snapshot_burst_does_not_hold_up_a_gas_alarm(pipeline, settings, registry):
    """Image work has its own process and its own topic: a gas alarm raised during a burst of large
    snapshots is notified about as fast as one raised on a quiet pipeline, long before the burst is done."""
    import statistics
    from datetime import UTC, datetime, timedelta

    from devices.client import DeviceClient
    from models import topics
    from models.schemas import PlateColour, PlateRead
    from models.topics import DeviceKind, MessageKind
    from tests.integration.harness import MqttProbe, kafka_all

    sensors: list[str] = []

    def alarm_latency() -> float:
        sensor = registry.add("gas", **QUIET)
        sensors.append(sensor)
        probe = MqttProbe(settings, f"{topics.PREFIX}/alerts/gas-level-1/{sensor}/#")
        client = leak(settings, sensor, (30.0,))
        try:
            started = time.monotonic()
            leak(settings, sensor, (31.0,), client=client, first_seq=1)  # the reading that raises it
            probe.next_json(60)
            return time.monotonic() - started
        finally:
            client.close()
            probe.close()

    quiet = [alarm_latency() for _ in range(3)]
    cp, snapshot, burst = registry.add("camera"), big_snapshot(), 150
    camera = DeviceClient(settings.mqtt, DeviceKind.CAMERA, cp).start()
    now = datetime.now(UTC)
    burst_started = time.monotonic()
    sent = [camera.publish(MessageKind.PLATE_READ, PlateRead(
        read_id=uuid.uuid4().hex, checkpoint_id=cp, camera_id=f"{cp}-L1", lane=1, plate=f"沪A{i:05d}",
        plate_colour=PlateColour.BLUE, confidence=0.9, captured_at=now - timedelta(seconds=burst - i),
        snapshot_jpeg=snapshot)) for i in range(burst)]
    for info in sent:
        info.wait_for_publish(60)
    published = time.monotonic() - burst_started
    during = alarm_latency()
    camera.close()
    analysed = poll(lambda: len(influx_query(settings, f"SELECT healthy FROM camera_health "
                                                       f"WHERE camera_id = '{cp}-L1'")) == burst, 180,
                    "every snapshot of the burst analysed")
    assert analysed
    burst_done = time.monotonic() - burst_started
    typical = statistics.median(quiet)
    # Ingest took the raising reading in turn, not after the burst: when it reached Kafka most of the
    # snapshots, published before it, were not there yet (one queue for every kind put all 150 ahead).
    raising = kafka_all(settings, topics.KAFKA_URGENT[MessageKind.GAS_READING],  # at an alarming level: urgent
                        lambda k, v: k == sensors[-1].encode() and b'"seq":1' in v, 1)[0]
    reads = kafka_all(settings, topics.KAFKA_TOPICS[MessageKind.PLATE_READ], lambda k, v: k == cp.encode(), burst)
    ahead = sum(r.timestamp < raising.timestamp for r in reads)
    assert ahead < 0.9 * burst, f"{ahead} of {burst} snapshots reached Kafka before the gas reading"
    assert during < burst_done - published, "the alarm waited for the burst"
    # before: ~1.0 s behind the burst at ingest, more with image work on the worker's loop; now
    # 0.15-0.7 s (the worker's loop still reads and re-keys the large plate reads). A loose bound: the
    # ordering above is the sharp check.
    assert during < max(5 * typical, typical + 2.0), f"alarm took {during:.2f}s in the burst vs {quiet} quiet"
    record_fault(fault=f"burst of {burst} snapshots of {len(snapshot) // 1000} KB", published=burst + 2,
                 acknowledged=burst + 2, in_kafka=burst + 2, alerts_expected=1, notified=1, duplicates=0,
                 recovery=f"gas alarm in {during:.2f} s during the burst (quiet: median {typical:.2f} s), its "
                          f"reading in Kafka ahead of {burst - ahead} of the {burst} snapshots; burst analysed in "
                          f"{burst_done:.1f} s")
