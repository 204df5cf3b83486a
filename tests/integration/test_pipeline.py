"""End to end on real servers: device -> Mosquitto -> ingest -> Kafka -> Faust -> InfluxDB, alerts."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from datetime import UTC, datetime, timedelta

import pytest

from deploy import services
from devices.client import DeviceClient
from devices.simulators import CheckpointSim, GasSensorSim, HotelSim
from models import schemas, topics
from models.schemas import GasReading, GasType, GasUnit
from models.topics import DeviceKind, MessageKind
from safecity.priority import thread_names
from tests.integration.harness import (MqttProbe, at, influx_query, kafka_all, kafka_config, kafka_records,
                                       partition_of, poll, settled)

pytestmark = pytest.mark.integration


KINDS = {"cp": "camera", "hotel": "hotel", "gas": "gas"}


@pytest.fixture
def uid(registry):
    """A new device id, registered as the kind its prefix names."""
    return lambda prefix: registry.add(KINDS[prefix])


def reading(sensor: str, value: float, t: datetime, seq: int) -> GasReading:
    return GasReading(sensor_id=sensor, gas=GasType.COMBUSTIBLE, value=value, unit=GasUnit.LEL, measured_at=t,
                      battery=90.0, seq=seq)


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def count(settings, measurement: str, where: str) -> int:
    rows = influx_query(settings, f"SELECT count(*) FROM {measurement} WHERE {where}")
    # a field none of the points has (a device_status without registry coordinates: lat, lon) counts null
    return max((v for r in rows for k, v in r.items() if k.startswith("count_") and v is not None), default=0)


def niceness(pid: int) -> int:
    return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[16])  # field 19: nice


def test_work_off_the_alarm_path_runs_at_a_lower_cpu_priority(pipeline, settings):
    """The metrics writer, InfluxDB (with its adapter) and the broker's log cleaner give way to the alarm path
    (safecity/priority.py)."""
    assert settings.background_nice == 10
    base = niceness(os.getpid())  # what the session's processes start at (0, unless the tests run niced)
    background = max(base, 10)
    for name in ("ingest", "worker", "alerter"):
        assert niceness(pipeline[name].pid) == base, name
    assert niceness(pipeline["metrics"].pid) == background
    servers = {s.name: s.pid() for s in services.local_services(settings)}
    assert niceness(servers["influxdb"]) == background
    assert niceness(servers["influx-v2-adapter"]) == background
    assert niceness(servers["kafka"]) == base and niceness(servers["mosquitto"]) == base
    kafka = servers["kafka"]
    threads = thread_names(kafka)
    lowered = {name for tid, name in threads.items() if os.getpriority(os.PRIO_PROCESS, tid) != base}
    assert lowered == {"kafka-log-clean"}  # the broker's log cleaner (compaction) and nothing else of it
    cleaner = next(tid for tid, name in threads.items() if name == "kafka-log-clean")
    assert os.getpriority(os.PRIO_PROCESS, cleaner) == background


def test_the_worker_still_answers_for_rebalances_without_counting_records(pipeline):
    """Faust's monitor runs without its per-record counters (processors/app.RecordsUncounted) and still
    times rebalances: with no sensor answering, Faust logs a missing sensor state at every one."""
    log = pipeline["worker"].log.read_text(errors="replace")
    assert "Worker ready" in log  # its first rebalance is done
    assert "Missing sensor state" not in log


def test_the_brokers_log_cleaner_is_paced(stack, settings):
    """The local broker compacts the changelogs at SAFECITY_SERVICES__KAFKA_CLEANER_MB_S (as it
    reports its own configuration), not flat out for seconds after every segment roll."""
    assert settings.services.kafka_cleaner_mb_s > 0
    paced = kafka_config(settings.kafka, "broker", "1")["log.cleaner.io.max.bytes.per.second"]
    assert float(paced) == settings.services.kafka_cleaner_mb_s * 1e6


def test_the_tables_changelogs_roll_small_segments(pipeline, settings):
    """Each table's changelog (made by the worker, through Faust) rolls a segment every 4 MiB and is
    cleaned once a fifth of it is superseded, so a worker taking over a partition reads back little
    besides the compacted states."""
    from processors.context import CHANGELOG_TOPIC_CONFIG

    config = kafka_config(settings.kafka, "topic", f"{settings.worker.app_id}-gas-state-changelog")
    assert config["segment.bytes"] == CHANGELOG_TOPIC_CONFIG["segment.bytes"] == str(4 * 1024 * 1024)
    assert float(config["min.cleanable.dirty.ratio"]) == 0.2
    assert config["cleanup.policy"] == "compact"


def test_simulated_devices_reach_influxdb(pipeline, settings, uid):
    import random

    rng = random.Random(5)
    sims = [CheckpointSim(uid("cp"), rng), HotelSim(uid("hotel"), rng), GasSensorSim(uid("gas"), rng)]
    now = datetime.now(UTC)
    for sim in sims:
        client = DeviceClient(settings.mqtt, sim.kind, sim.device_id).start()
        infos = [client.publish(sim.message, sim.next(now - timedelta(seconds=10 - i))) for i in range(5)]
        for info in infos:
            info.wait_for_publish(10)
        client.close()
    checkpoint, hotel, gas = (s.device_id for s in sims)
    poll(lambda: count(settings, "plate_reads", f"checkpoint_id = '{checkpoint}'") == 5, 60, "plate reads")
    poll(lambda: count(settings, "registrations", f"hotel_id = '{hotel}'") == 5, 60, "registrations")
    poll(lambda: count(settings, "gas", f"sensor_id = '{gas}'") == 5, 60, "gas readings")
    # online then offline from each device's status topic
    poll(lambda: count(settings, "device_status", f"device_id = '{gas}'") >= 2, 60, "device status")
    rows = influx_query(settings, f"SELECT upload_delay_s FROM registrations WHERE hotel_id = '{hotel}'")
    assert all(r["upload_delay_s"] >= 0 for r in rows)


def test_gas_leak_raises_and_clears_an_alert_on_mqtt(pipeline, settings, uid):
    sensor = uid("gas")
    probe = MqttProbe(settings, f"{topics.PREFIX}/alerts/+/{sensor}/#")
    client = DeviceClient(settings.mqtt, DeviceKind.GAS, sensor).start()
    t0 = datetime.now(UTC) - timedelta(seconds=120)
    try:
        for i, value in enumerate([3.0, 12.0, 31.0, 33.0]):
            client.publish(MessageKind.GAS_READING, reading(sensor, value, t0 + timedelta(seconds=10 * i), i))
        fired = probe.next_json(90)
        assert fired["_topic"] == topics.alert_topic("gas-level-1", sensor, f"gas-level-1:{sensor}")
        assert (fired["type"], fired["state"], fired["device_id"]) == ("gas-level-1", "firing", sensor)
        assert fired["since"].startswith((t0 + timedelta(seconds=20)).isoformat()[:19])
        for i in (4, 10):  # below the clear level for the clear time (60 s)
            client.publish(MessageKind.GAS_READING, reading(sensor, 4.0, t0 + timedelta(seconds=10 * i), i))
        cleared = probe.next_json(60)
        assert (cleared["type"], cleared["state"], cleared["since"]) == ("gas-level-1", "cleared", fired["since"])
        # sentinel: a new alarm on the same sensor; a repeated transition would arrive before it
        later = t0 + timedelta(seconds=110)
        for i, value in enumerate([31.0, 33.0], start=11):
            client.publish(MessageKind.GAS_READING, reading(sensor, value, later + timedelta(seconds=10 * (i - 11)), i))
        repeated, _ = probe.before(lambda a: at(a) >= later, 90)
        assert repeated == []  # one transition each, nothing repeated
    finally:
        client.close()
        probe.close()
    poll(lambda: count(settings, "alerts", f"device_id = '{sensor}' AND time < '{iso(later)}'") == 2, 30,
         "alert metrics")


def test_malformed_message_goes_to_the_dead_letter_topic_with_its_reason(pipeline, settings, uid):
    sensor = uid("gas")
    client = DeviceClient(settings.mqtt, DeviceKind.GAS, sensor).start()
    bad_topic = topics.device_topic(DeviceKind.GAS, sensor, MessageKind.GAS_READING)
    try:
        client.publish_raw(bad_topic, b'{"sensor_id": "' + sensor.encode() + b'", "value": ').wait_for_publish(10)
        wrong = json.dumps({"sensor_id": sensor, "gas": "combustible", "value": "high", "unit": "%LEL",
                            "measured_at": datetime.now(UTC).isoformat()}).encode()
        client.publish_raw(bad_topic, wrong).wait_for_publish(10)
    finally:
        client.close()
    def both() -> list | None:
        found = kafka_records(settings, topics.KAFKA_DEAD_LETTERS, lambda k, v: k == bad_topic.encode(), timeout=5)
        return found if len(found) >= 2 else None

    records = poll(both, 60, "both dead letters")
    letters = [schemas.decode_as(schemas.DeadLetter, r.value) for r in records]
    assert sorted(dl.reason_code for dl in letters) == ["not-json", "schema-invalid"]
    invalid = next(dl for dl in letters if dl.reason_code == "schema-invalid")
    assert invalid.stage == "ingest" and invalid.source == bad_topic and "$.value" in invalid.reason
    assert invalid.payload == wrong and not invalid.truncated
    poll(lambda: sum(r["count"] for r in influx_query(
        settings, "SELECT sum(count) AS count FROM dead_letters GROUP BY reason")) >= 2, 30, "dead-letter counts")


def test_ingest_puts_each_reading_in_its_keys_partition_in_order(pipeline, settings, uid):
    """Ingest lets a burst gather and produces it at once: each reading must still land in its key's
    partition (murmur2, as every producer of the topic places it), so a sensor's readings and state
    stay in one partition, in the order published, and say which bridge took them."""
    sensors = [uid("gas") for _ in range(12)]
    clients = [DeviceClient(settings.mqtt, DeviceKind.GAS, sensor).start() for sensor in sensors]
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    try:
        for i in range(5):
            for client, sensor in zip(clients, sensors):
                client.publish(MessageKind.GAS_READING, reading(sensor, 2.0, t0 + timedelta(seconds=i), i))
        keys = {sensor.encode() for sensor in sensors}
        records = kafka_all(settings, topics.KAFKA_TOPICS[MessageKind.GAS_READING], lambda k, v: k in keys, 60)
    finally:
        for client in clients:
            client.close()
    partitions = settings.kafka.partitions
    for r in records:  # a pack's readings are each a record here, keyed by their sensor (harness.expanded)
        assert r.partition == partition_of(r.key.decode(), partitions), r.key
        assert (b"ingest", settings.mqtt.ingest_client_id.encode()) in [(k.encode(), v) for k, v in r.headers]
    assert len({r.partition for r in records}) > 1
    # the burst went in packs: records that carry several readings, each at one offset
    assert len({(r.partition, r.offset) for r in records}) < len(records)
    for sensor in sensors:
        seqs = [json.loads(r.value)["seq"] for r in sorted(records, key=lambda r: (r.partition, r.offset))
                if r.key == sensor.encode()]
        assert seqs == list(range(5)), (sensor, seqs)


def test_a_pack_of_readings_is_processed_reading_by_reading_and_a_bad_one_becomes_a_dead_letter(
        pipeline, settings, uid):
    """Ingest packs a burst's readings of one partition into one record (``schemas.pack``). The worker
    takes them one by one, in order: two readings over the first level in one pack raise the alarm,
    an element that does not fit the schema goes to the dead-letter topic with its reason (the rest of
    the pack is still processed), and a pack that does not parse becomes one dead letter."""
    from aiokafka import AIOKafkaProducer

    sensor = uid("gas")
    probe = MqttProbe(settings, f"{topics.PREFIX}/alerts/+/{sensor}/#")
    t0 = datetime.now(UTC) - timedelta(seconds=60)
    good = [schemas.encode(reading(sensor, v, t0 + timedelta(seconds=10 * i), i)) for i, v in enumerate([3, 31, 33])]
    bad = json.dumps({"sensor_id": sensor, "gas": "combustible", "value": "high", "unit": "%LEL",
                      "measured_at": t0.isoformat()}).encode()
    broken = b'[{"sensor_id": "' + sensor.encode() + b'", "value": 1'
    topic = topics.KAFKA_TOPICS[MessageKind.GAS_READING]

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap)
        await producer.start()
        try:
            partition = partition_of(sensor, settings.kafka.partitions)
            await producer.send_and_wait(topic, schemas.pack([good[0], bad, *good[1:]]), partition=partition)
            await producer.send_and_wait(topic, broken, partition=partition)
        finally:
            await producer.stop()

    try:
        asyncio.run(produce())
        fired = probe.next_json(90)
        assert (fired["type"], fired["state"], fired["device_id"]) == ("gas-level-1", "firing", sensor)
        assert fired["since"].startswith((t0 + timedelta(seconds=10)).isoformat()[:19])
    finally:
        probe.close()
    def letters() -> list | None:
        found = [schemas.decode_as(schemas.DeadLetter, r.value) for r in kafka_records(
            settings, topics.KAFKA_DEAD_LETTERS, lambda k, v: k == topic.encode(), timeout=5, count=10**6)]
        found = [dl for dl in found if sensor.encode() in dl.payload]
        return found if len(found) >= 2 else None

    letters = poll(letters, 60, "two dead letters")
    assert sorted((dl.stage, dl.reason_code) for dl in letters) == [("processor", "pack-invalid"),
                                                                    ("processor", "schema-invalid")]
    assert next(dl for dl in letters if dl.reason_code == "schema-invalid").payload == bad
    assert next(dl for dl in letters if dl.reason_code == "pack-invalid").payload == broken
    poll(lambda: count(settings, "gas", f"sensor_id = '{sensor}'") == 3, 30, "a metric point per good reading")


def test_a_reading_at_an_alarming_level_overtakes_the_backlog_of_routine_readings(pipeline, settings, uid):
    """Ingest sends a reading at an alarming level to the urgent topic (``ingest.validate.Urgency``), and
    the worker takes it past the routine readings' backlog. A backlog of 60,000 routine readings is
    produced straight to the gas topic, on one partition, with an alarm of its own (sensor ``behind``)
    after the first 40,000; right after, another sensor of that partition publishes an alarm over MQTT.
    Its alert comes first; in one topic it would wait behind the whole backlog, ``behind``'s alarm
    included."""
    from aiokafka import AIOKafkaProducer

    n = settings.kafka.partitions
    urgent = uid("gas")
    same = []
    while len(same) < 11:  # registered sensors on the urgent one's partition
        sensor = uid("gas")
        if partition_of(sensor, n) == partition_of(urgent, n):
            same.append(sensor)
    behind, routine = same[0], same[1:]
    probe = MqttProbe(settings, f"{topics.PREFIX}/alerts/gas-level-1/#")
    t0 = datetime.now(UTC) - timedelta(minutes=30)
    backlog = [schemas.encode(reading(s, 2.0, t0 + timedelta(milliseconds=10 * i), i))
               for i in range(6_000) for s in routine]
    # the backlog's own alarm two thirds of the way in: in one topic, the alarm published over MQTT would
    # come after it by the last third's 20,000 readings (seconds), not just moments
    backlog[40_000:40_000] = [schemas.encode(reading(behind, v, t0 + timedelta(seconds=60 + k), k))
                              for k, v in enumerate([30, 31])]

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, max_request_size=2 * 1024 * 1024)
        await producer.start()
        try:
            partition = partition_of(urgent, n)
            for i in range(0, len(backlog), 200):
                await producer.send(topics.KAFKA_TOPICS[MessageKind.GAS_READING], schemas.pack(backlog[i:i + 200]),
                                    partition=partition)
            await producer.flush()
        finally:
            await producer.stop()

    client = DeviceClient(settings.mqtt, DeviceKind.GAS, urgent).start()
    try:
        asyncio.run(produce())
        now = datetime.now(UTC)
        for k, v in enumerate([30, 31]):
            client.publish(MessageKind.GAS_READING, reading(urgent, v, now - timedelta(seconds=1 - k), k)
                           ).wait_for_publish(10)
        first = probe.next_json(120, lambda a: a["device_id"] in (urgent, behind) and a["state"] == "firing")
        second = probe.next_json(300, lambda a: a["device_id"] in (urgent, behind) and a["state"] == "firing")
    finally:
        client.close()
        probe.close()
    assert (first["device_id"], second["device_id"]) == (urgent, behind)
    poll(lambda: count(settings, "gas", f"sensor_id = '{urgent}'") == 2, 60, "the urgent readings' metric points")
    # the backlog worked off, its metric points written, before the next test counts its own
    settled(settings, settings.worker.app_id, topics.KAFKA_TOPICS[MessageKind.GAS_READING], 180)
    settled(settings, f"{settings.worker.app_id}-metrics", topics.KAFKA_METRICS, 180)


def test_ingest_crash_loses_nothing(pipeline, settings, uid):
    """SIGKILL the bridge while a device publishes; on restart the broker redelivers what Kafka never
    confirmed, so every reading arrives (duplicates are allowed, loss is not)."""
    sensor = uid("gas")
    client = DeviceClient(settings.mqtt, DeviceKind.GAS, sensor).start()
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    total = 600
    half_sent = threading.Event()

    def publish() -> None:
        for i in range(total):
            client.publish(MessageKind.GAS_READING, reading(sensor, 2.0, t0 + timedelta(milliseconds=i), i))
            if i == total // 2:
                half_sent.set()

    sender = threading.Thread(target=publish)
    sender.start()
    half_sent.wait(30)
    pipeline["ingest"].kill()
    sender.join(60)
    pipeline["ingest"].start()
    try:
        poll(lambda: count(settings, "gas", f"sensor_id = '{sensor}'") >= total, 90, f"all {total} readings")
        # points are keyed by sensor and time, so a redelivered reading overwrites itself
        assert count(settings, "gas", f"sensor_id = '{sensor}'") == total
    finally:
        client.close()


def test_two_bridges_on_a_shared_subscription_split_the_load_and_a_killed_one_loses_nothing(
        pipeline, settings, uid, stack_env):
    """Ingest scaled out: two more bridges subscribe as ``$share/<group>/...``; the broker gives each
    message to one of them. One is SIGKILLed mid-stream and restarted (same client id, so the same
    persistent sessions): every reading reaches Kafka through the two (Kafka header ``ingest``),
    and each took a share. (The session's own bridge also takes everything, on its own
    subscription: the records it wrote are told apart by their header.)"""
    import uuid

    from aiokafka import AIOKafkaConsumer

    from deploy.processes import READY
    from tests.integration.harness import Process, expanded

    gas_topic = topics.KAFKA_TOPICS[MessageKind.GAS_READING]

    group, run_dir = f"it-share-{uuid.uuid4().hex[:6]}", settings.services.run_dir
    ids = {n: f"it-{n}-{group}" for n in ("a", "b")}
    bridges = {n: Process(["ingest"], stack_env | {"SAFECITY_MQTT__INGEST_CLIENT_ID": ids[n],
                                                   "SAFECITY_MQTT__INGEST_SHARE_GROUP": group},
                          run_dir / f"ingest-{n}.log", READY["ingest"]).start(60) for n in ids}
    sensor = uid("gas")
    client = DeviceClient(settings.mqtt, DeviceKind.GAS, sensor).start()
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    total = 600
    try:
        for i in range(total):
            info = client.publish(MessageKind.GAS_READING, reading(sensor, 2.0, t0 + timedelta(milliseconds=i), i))
            if i == total // 2:
                info.wait_for_publish(10)
                bridges["a"].kill()
        bridges["a"].start(60)

        async def by_bridge() -> dict[str, set[int]]:
            consumer = AIOKafkaConsumer(gas_topic,
                                        bootstrap_servers=settings.kafka.bootstrap, group_id=None,
                                        auto_offset_reset="earliest", enable_auto_commit=False)
            await consumer.start()
            seen: dict[str, set[int]] = {n: set() for n in ids}
            try:
                deadline = asyncio.get_running_loop().time() + 90
                while len(seen["a"] | seen["b"]) < total and asyncio.get_running_loop().time() < deadline:
                    for records in (await consumer.getmany(timeout_ms=500)).values():
                        for r in (e for record in records for e in expanded(gas_topic, record)):
                            who = dict(r.headers or ()).get("ingest", b"").decode()
                            if r.key == sensor.encode() and who in ids.values():
                                name = next(n for n, v in ids.items() if v == who)
                                seen[name].add(json.loads(r.value)["seq"])
            finally:
                await consumer.stop()
            return seen

        seen = asyncio.run(by_bridge())
        assert seen["a"] | seen["b"] == set(range(total)), f"missing: {sorted(set(range(total)) - seen['a'] - seen['b'])[:10]}"
        assert seen["a"] and seen["b"], {n: len(v) for n, v in seen.items()}  # both took a share
    finally:
        client.close()
        for bridge in bridges.values():
            bridge.stop()
