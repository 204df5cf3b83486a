"""Faults on the real servers: the alarm path keeps flowing, and nothing acknowledged is lost."""

from __future__ import annotations

import time
import uuid

import pytest

from deploy import services
from tests.integration.harness import influx_query, poll, record_fault
from tests.integration.test_alerting import QUIET, leak

pytestmark = pytest.mark.integration


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
        assert pipeline["worker"].proc.poll() is None and pipeline["alerter"].proc.poll() is None
    finally:
        influx.start()
        back = time.monotonic()
    assert latency < 15, f"alarm took {latency:.1f}s with InfluxDB down"
    # the backlog waited in Kafka and is written now: every reading, once
    rows = poll(lambda: (r := influx_query(settings, f"SELECT value FROM gas WHERE sensor_id = '{sensor}'"))
                and len(r) == 5 and r, 90, "the readings' metrics after InfluxDB is back")
    assert sorted(r["value"] for r in rows) == [30.0, 31.0, 32.0, 33.0, 34.0]
    notified = len(http.where("/hook/duty", alert_id))
    record_fault(fault="InfluxDB stopped while a gas alarm fires", published=5, acknowledged="-", in_kafka=len(rows),
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
