"""Gas safety on the real pipeline: a simulated leak, a lost connection, a worker restarted mid-alarm."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from devices.client import DeviceClient
from devices.simulators import GasSensorSim
from models import topics
from models.schemas import GasReading, GasType, GasUnit
from models.topics import DeviceKind, MessageKind
from processors.rules import gas
from tests.integration.harness import MqttProbe, at, influx_query, kafka_records, poll

pytestmark = pytest.mark.integration
QUIET = {"interval_s": 3600}  # no silence alerts while a test publishes historical readings


def clean(sensor: str, at: datetime) -> GasReading:
    """A reading in clean air."""
    return GasReading(sensor_id=sensor, gas=GasType.COMBUSTIBLE, value=1.0, unit=GasUnit.LEL, measured_at=at)


def raise_alarm(client: DeviceClient, sensor: str, start: datetime, seq: int) -> None:
    """Two readings over the first level from ``start``: a new alarm, sent as a sentinel."""
    for i, value in enumerate((30.0, 31.0)):
        client.publish(MessageKind.GAS_READING, GasReading(
            sensor_id=sensor, gas=GasType.COMBUSTIBLE, value=value, unit=GasUnit.LEL,
            measured_at=start + timedelta(seconds=10 * i), seq=seq + i)).wait_for_publish(10)


def test_simulated_leak_gives_warning_levels_and_clear_in_order(pipeline, settings, registry):
    sensor = registry.add("gas", site="bldg-leak", **QUIET)
    sim = GasSensorSim(sensor, random.Random(3), leak_probability=0.0)
    t0 = datetime.now(UTC) - timedelta(minutes=8)
    readings = [sim.next(t0)]
    sim.start_leak(6.0, peak=65.0)
    readings += [sim.next(t0 + timedelta(seconds=10 * i)) for i in range(1, 40)]
    expected = []
    state = gas.GasState()
    for r in readings:  # what the pure rules say this series means
        state, alerts = gas.step(state, r, gas.GasConfig(interval_s=3600))
        expected += [(a.at.isoformat().replace("+00:00", "Z"), a.type, a.state.value) for a in alerts]
    assert [e[1:] for e in expected if e[2] == "firing"] == [
        ("gas-rate-of-rise", "firing"), ("gas-level-1", "firing"), ("gas-level-2", "firing")]
    assert expected[-1][1:] == ("gas-level-1", "cleared") and len(expected) == 6

    probe = MqttProbe(settings, f"{topics.PREFIX}/alerts/+/{sensor}/#")
    client = DeviceClient(settings.mqtt, DeviceKind.GAS, sensor).start()
    try:
        for r in readings:
            client.publish(MessageKind.GAS_READING, r)
        seen = [probe.next_json(90) for _ in expected]
        # Alerts are keyed by alert id, so different alerts may arrive in any order; in event time
        # they are the expected sequence: warning, first level, second level, then the clears.
        assert sorted((a["at"], a["type"], a["state"]) for a in seen) == sorted(expected)
        for alert_id in {a["alert_id"] for a in seen}:  # each alert's own transitions arrive in order
            assert [a["state"] for a in seen if a["alert_id"] == alert_id] == ["firing", "cleared"]
        # sentinel: a new alarm after the series; nothing about the series may come before it
        later = readings[-1].measured_at + timedelta(seconds=10)
        raise_alarm(client, sensor, later, seq=len(readings))
        repeated, _ = probe.before(lambda a: at(a) >= later, 90)
        assert repeated == []
    finally:
        client.close()
        probe.close()
    def all_points() -> list[dict] | None:
        rows = influx_query(settings, f"SELECT value FROM gas WHERE sensor_id = '{sensor}'")
        return rows if len(rows) == 42 else None

    values = poll(all_points, 30, "all 40 readings and the sentinel's 2 in InfluxDB")
    assert max(v["value"] for v in values) >= 50  # of all of them, not of the first few to arrive


def test_lost_connection_raises_offline_from_the_last_will(pipeline, settings, registry):
    sensor = registry.add("gas", **QUIET)
    probe = MqttProbe(settings, f"{topics.PREFIX}/alerts/sensor-offline/{sensor}/#")
    client = DeviceClient(settings.mqtt, DeviceKind.GAS, sensor).start()
    now = datetime.now(UTC)
    try:
        client.publish(MessageKind.GAS_READING, clean(sensor, now)).wait_for_publish(10)
        poll(lambda: influx_query(settings, f"SELECT value FROM gas WHERE sensor_id = '{sensor}'"), 30, "reading")
        client.close(graceful=False)  # the socket drops: the broker publishes the last will
        offline = probe.next_json(60)
        assert (offline["state"], offline["details"]["reason"], offline["severity"]) == ("firing", "last-will", "warning")
        back = DeviceClient(settings.mqtt, DeviceKind.GAS, sensor).start()
        back.publish(MessageKind.GAS_READING, clean(sensor, datetime.now(UTC)))
        assert probe.next_json(60)["state"] == "cleared"
        back.close()
    finally:
        probe.close()


def test_a_silent_sensor_goes_offline_at_its_deadline_and_back_with_its_next_reading(pipeline, settings, registry):
    """The silence check takes due sensors from the worker's deadline index, not from a scan."""
    sensor = registry.add("gas", interval_s=2)  # silent after 3 intervals: 6 s
    probe = MqttProbe(settings, f"{topics.PREFIX}/alerts/sensor-offline/{sensor}/#")
    client = DeviceClient(settings.mqtt, DeviceKind.GAS, sensor).start()
    last = datetime.now(UTC)
    try:
        client.publish(MessageKind.GAS_READING, clean(sensor, last)).wait_for_publish(10)
        offline = probe.next_json(60)
        assert (offline["state"], offline["details"]["reason"]) == ("firing", "silent")
        assert at(offline) == last + timedelta(seconds=6)  # the moment the silence became long enough
        client.publish(MessageKind.GAS_READING, clean(sensor, datetime.now(UTC)))
        assert probe.next_json(60)["state"] == "cleared"
    finally:
        client.close()
        probe.close()


def test_unregistered_device_is_dead_lettered_at_ingest(pipeline, settings):
    stranger = "gas-not-in-registry"
    client = DeviceClient(settings.mqtt, DeviceKind.GAS, stranger)
    client.client.connect(settings.mqtt.host, settings.mqtt.port)
    client.client.loop_start()
    topic = topics.device_topic(DeviceKind.GAS, stranger, MessageKind.GAS_READING)
    client.publish(MessageKind.GAS_READING, GasReading(sensor_id=stranger, gas=GasType.COMBUSTIBLE, value=1.0,
                                                       unit=GasUnit.LEL, measured_at=datetime.now(UTC))).wait_for_publish(10)
    client.client.disconnect()
    client.client.loop_stop()
    records = poll(lambda: kafka_records(settings, topics.KAFKA_DEAD_LETTERS, lambda k, v: k == topic.encode(),
                                         timeout=5), 60, "the dead letter")
    assert b'"reason_code":"unknown-device"' in records[0].value


def test_worker_restarted_mid_alarm_neither_re_raises_nor_forgets(pipeline, settings, registry):
    sensor = registry.add("gas", **QUIET)
    probe = MqttProbe(settings, f"{topics.PREFIX}/alerts/+/{sensor}/#")
    client = DeviceClient(settings.mqtt, DeviceKind.GAS, sensor).start()
    t0 = datetime.now(UTC) - timedelta(minutes=5)

    def send(i: int, value: float) -> None:
        client.publish(MessageKind.GAS_READING, GasReading(
            sensor_id=sensor, gas=GasType.COMBUSTIBLE, value=value, unit=GasUnit.LEL,
            measured_at=t0 + timedelta(seconds=10 * i), seq=i)).wait_for_publish(10)

    try:
        for i, v in enumerate([2, 3, 30, 32]):
            send(i, v)
        fired = probe.next_json(90)
        assert (fired["type"], fired["state"]) == ("gas-level-1", "firing")

        pipeline["worker"].kill()  # a crash, mid-alarm
        for i, v in enumerate([33, 34, 31], start=4):  # still in alarm while the worker is down
            send(i, v)
        pipeline["worker"].start(timeout=120)
        poll(lambda: len(influx_query(settings, f"SELECT value FROM gas WHERE sensor_id = '{sensor}'")) == 7, 90,
             "the readings sent while the worker was down")
        for i in (7, 14):  # below the clear level for the clear time
            send(i, 5)
        # the clear is the sentinel: had the restart raised the alarm again, that would come first
        again, cleared = probe.before(lambda a: a["state"] == "cleared", 90)
        assert again == []
        assert (cleared["type"], cleared["since"]) == ("gas-level-1", fired["since"])
        later = t0 + timedelta(seconds=150)
        raise_alarm(client, sensor, later, seq=15)  # and nothing after the clear, before a new alarm
        repeated, _ = probe.before(lambda a: at(a) >= later, 90)
        assert repeated == []
    finally:
        client.close()
        probe.close()
