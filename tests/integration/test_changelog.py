"""Batched changelogs (processors/changelog.py) on the real Faust and Kafka: an offset is committed
only once the changelog records of its events are in Kafka, and a worker with an empty store
recovers the table from those records."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from processors import changelog, warm_start
from processors.app import SafeCityApp
from processors.changelog import ChangelogBatches

pytestmark = pytest.mark.integration

PARTITIONS = 2


def _app(name: str, bootstrap: str, datadir: Path) -> tuple[SafeCityApp, changelog.BatchedTable, list]:
    """A worker-like app: one agent copying its records into a batched table, with no flush timer,
    so only Faust's own producer flushes (before a commit, on revoke, on stop) send the changelog."""
    changelog.store_without_wal()
    app = SafeCityApp(name, broker=f"kafka://{bootstrap}", store="rocksdb://", datadir=str(datadir),
                      web_enabled=False, topic_partitions=PARTITIONS, topic_replication_factor=1,
                      consumer_auto_offset_reset="earliest", key_serializer="raw", value_serializer="raw")
    app.outputs, app.output_factories = {}, {}
    app.changelogs = ChangelogBatches(app)
    table = app.changelogs.table("copies", key_type=bytes, value_type=bytes, partitions=PARTITIONS)
    topic = app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                      partitions=PARTITIONS)
    seen: list = []

    @app.agent(topic)
    async def copy(stream):
        async for key, value in stream.items():
            table[key] = value
            seen.append(key)

    return app, table, seen


async def _changelog(bootstrap: str, topic: str) -> tuple[dict[bytes, bytes], int]:
    """The changelog's latest value per key, and its number of records."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        latest, count = {}, 0

        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in tps])

        while await behind():
            for records in (await consumer.getmany(*tps, timeout_ms=1000)).values():
                for r in records:
                    latest[r.key], count = r.value, count + 1
        return latest, count
    finally:
        await consumer.stop()


async def _produce(bootstrap: str, topic: str, n: int, keys: int, first: int = 0) -> None:
    """Records ``first`` .. ``first + n - 1``: value ``v<i>`` under key ``k<i % keys>``."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(first, first + n):
            await producer.send(topic, f"v{i}".encode(), key=f"k{i % keys}".encode())
        await producer.flush()
    finally:
        await producer.stop()


async def _run_until(app: SafeCityApp, table: changelog.BatchedTable, expected: dict, timeout: float = 60) -> dict:
    """Run ``app`` until its table holds ``expected`` (or the timeout); the table's contents then."""
    await app.start()
    try:
        deadline, seen = time.monotonic() + timeout, {}
        while seen != expected and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            seen = dict(table.data.items())
        return seen
    finally:
        await app.stop()


def test_an_offset_is_committed_only_once_its_changelog_records_are_in_kafka(stack, settings, tmp_path):
    bootstrap = settings.kafka.bootstrap
    name = f"it-batched-{uuid.uuid4().hex[:6]}"
    n, keys = 400, 40
    expected = {f"k{i % keys}".encode(): f"v{i}".encode() for i in range(n)}  # each key's last value

    async def scenario() -> tuple[dict, int, dict, dict, int, dict]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic(name, PARTITIONS, 1)])
        await _produce(bootstrap, name, n, keys)

        app, table, seen = _app(name, bootstrap, tmp_path / "one")
        await app.start()
        try:
            deadline, committed = time.monotonic() + 90, 0
            while committed < n and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                offsets = await admin.list_consumer_group_offsets(name)
                committed = sum(o.offset for tp, o in offsets.items() if tp.topic == name and o.offset > 0)
            # the moment every offset is committed, before anything else flushes: the changelog holds
            # every key's latest value (with no flush timer, only the commit could have sent them)
            at_commit, _ = await _changelog(bootstrap, table.changelog_topic.get_topic_name())
            persisted = {p: table.data.persisted_offset(TopicPartition(table.changelog_topic.get_topic_name(), p))
                         for p in range(PARTITIONS)}
        finally:
            await app.stop()
        final, count = await _changelog(bootstrap, table.changelog_topic.get_topic_name())

        # a second worker, its store empty, recovers the table from the changelog
        app2, table2, _ = _app(name, bootstrap, tmp_path / "two")
        try:
            recovered = await _run_until(app2, table2, expected)
        finally:
            await admin.close()
        return at_commit, committed, final, recovered, count, {"seen": len(seen), "persisted": persisted}

    at_commit, committed, final, recovered, count, more = asyncio.run(scenario())
    assert committed == n, committed
    assert more["seen"] == n
    assert at_commit == expected
    assert final == expected
    assert count < n, count  # a key changed more than once between flushes is sent once
    assert all(offset is not None and offset >= 0 for offset in more["persisted"].values()), more
    assert recovered == expected


def test_a_starting_worker_reads_the_changelogs_before_it_joins(stack, settings, tmp_path):
    """processors/warm_start.py: the store holds every key's latest value and the offset of the last
    record read before the app starts; Faust's recovery then has nothing left to read, and a second
    start reads only what was written since."""
    bootstrap = settings.kafka.bootstrap
    name = f"it-warm-{uuid.uuid4().hex[:6]}"
    keys = 30

    async def scenario() -> dict:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic(name, PARTITIONS, 1)])
        await admin.close()
        out: dict = {}
        await _produce(bootstrap, name, 300, keys)
        first = {f"k{i % keys}".encode(): f"v{i}".encode() for i in range(300)}
        app, table, _ = _app(name, bootstrap, tmp_path / "one")
        out["one"] = await _run_until(app, table, first)
        changelog_topic = table.changelog_topic.get_topic_name()
        latest, _ = await _changelog(bootstrap, changelog_topic)

        fresh, fresh_table, _ = _app(name, bootstrap, tmp_path / "two")  # a new worker of the app, not started
        out["read"] = await warm_start.read_changelogs(warm_start.table_stores(fresh), settings.kafka)
        store = fresh_table.data
        out["stored"] = {}
        out["persisted"] = {}
        out["open"] = sorted(store._dbs)  # left open for Faust: the rebalance opens none
        for p in range(PARTITIONS):
            db = store._dbs[p]
            out["stored"].update({k: v for k, v in db.items() if k != store.offset_key})
            out["persisted"][p] = int(db.get(store.offset_key) or -1)
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await consumer.start()
        tps = [TopicPartition(changelog_topic, p) for p in range(PARTITIONS)]
        out["ends"] = {tp.partition: end for tp, end in (await consumer.end_offsets(tps)).items()}
        await consumer.stop()
        out["latest"] = latest
        out["again"] = await warm_start.read_changelogs(warm_start.table_stores(fresh), settings.kafka)

        # changes after the first warm start: the next one reads only those
        await _produce(bootstrap, name, 60, keys, first=300)
        app, table, _ = _app(name, bootstrap, tmp_path / "one")
        second = {**first, **{f"k{i % keys}".encode(): f"v{i}".encode() for i in range(300, 360)}}
        out["two"] = await _run_until(app, table, second)
        out["tail"] = await warm_start.read_changelogs(warm_start.table_stores(fresh), settings.kafka)
        out["second"] = second
        return out

    out = asyncio.run(scenario())
    assert out["one"] == out["latest"]  # the first worker wrote its table to the changelog
    assert out["open"] == list(range(PARTITIONS))
    assert out["stored"] == out["latest"]
    assert out["read"] >= len(out["latest"])
    assert out["persisted"] == {p: end - 1 for p, end in out["ends"].items()}, out  # recovery starts at the end
    assert out["again"] == 0
    assert out["two"] == out["second"]
    assert 0 < out["tail"] <= 60


def test_a_workers_start_gives_existing_changelog_topics_the_current_settings(stack, settings, tmp_path):
    """A changelog topic created before ``CHANGELOG_TOPIC_CONFIG`` changed (Faust sets it only when it
    creates the topic) gets it from ``align_topics`` at the worker's start, keeping its other settings:
    still compacted, its own retention. A topic not named is left as it was; a second start changes
    nothing. The names are the worker's own tables' changelogs."""
    from aiokafka.admin import AIOKafkaAdminClient

    from deploy.kafka_topics import align_topics
    from processors.app import changelog_topics, create_app
    from processors.context import CHANGELOG_TOPIC_CONFIG
    from tests.integration.harness import kafka_config, poll

    app_id = f"it-align-{uuid.uuid4().hex[:6]}"
    worker = settings.worker.model_copy(update={"app_id": app_id, "data_dir": tmp_path / "worker"})
    app = create_app(settings.model_copy(update={"worker": worker, "registry": None}), outputs={})
    changelogs = changelog_topics(app)
    mine, other = f"{app_id}-gas-state-changelog", f"{app_id}-not-a-table-changelog"
    assert mine in changelogs and other not in changelogs
    old = {"cleanup.policy": "compact", "segment.bytes": str(128 * 1024 * 1024), "retention.ms": "4321000"}

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(name, 1, 1, topic_configs=old) for name in (mine, other)])
        finally:
            await admin.close()

    asyncio.run(create())  # the worker's other tables have no changelog yet: Faust creates them, configured
    altered = asyncio.run(align_topics(settings.kafka, changelogs, CHANGELOG_TOPIC_CONFIG))
    assert list(altered) == [mine]
    assert altered[mine]["segment.bytes"] == str(128 * 1024 * 1024)  # what it had, for the log
    # the broker applies a topic's new configuration a moment after it acknowledged it
    segment = CHANGELOG_TOPIC_CONFIG["segment.bytes"]
    poll(lambda: kafka_config(settings.kafka, "topic", mine)["segment.bytes"] == segment, 15, "the new segment size")
    now = kafka_config(settings.kafka, "topic", mine)
    assert {k: now[k] for k in CHANGELOG_TOPIC_CONFIG} == CHANGELOG_TOPIC_CONFIG
    assert now["cleanup.policy"] == "compact" and now["retention.ms"] == "4321000"  # its other settings kept
    assert kafka_config(settings.kafka, "topic", other)["segment.bytes"] == str(128 * 1024 * 1024)
    assert asyncio.run(align_topics(settings.kafka, changelogs, CHANGELOG_TOPIC_CONFIG)) == {}
