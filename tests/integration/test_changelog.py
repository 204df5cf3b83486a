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

from processors import changelog
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


def test_an_offset_is_committed_only_once_its_changelog_records_are_in_kafka(stack, settings, tmp_path):
    bootstrap = settings.kafka.bootstrap
    name = f"it-batched-{uuid.uuid4().hex[:6]}"
    n, keys = 400, 40
    expected = {f"k{i % keys}".encode(): f"v{i}".encode() for i in range(n)}  # each key's last value

    async def scenario() -> tuple[dict, int, dict, dict, int, dict]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic(name, PARTITIONS, 1)])
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            for i in range(n):
                await producer.send(name, f"v{i}".encode(), key=f"k{i % keys}".encode())
            await producer.flush()
        finally:
            await producer.stop()

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
        await app2.start()
        try:
            recovered: dict = {}
            deadline = time.monotonic() + 60
            while recovered != expected and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                recovered = dict(table2.data.items())
        finally:
            await app2.stop()
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
