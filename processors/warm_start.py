"""A starting worker's tables, read from their changelogs before it joins the group.

When a worker joins, the partitions it takes over stop where their old owner gave them up, and
wait until the new worker has restored their tables: Faust restores only after the rebalance, from
each partition's offset persisted in the local store. A new worker's store is empty, so it read every
live record of those partitions while they waited. In the pipeline bench at 2,500 gas readings/s,
20,000 sensors, a moved partition waited 7.9 s (5.8-8.1), 3-5 s of it the restore of the gas table
(Faust's recovery: 4,000-6,000 changelog records a second, on a busy machine).

``read_changelogs`` does that reading first, before Faust starts: every partition of every table's
changelog, from the local store's persisted offset (as Faust's recovery would) to the end, written
into the local store (RocksDB, a write batch per fetch, as Faust's recovery writes) with the
persisted offset after it, and leaves each database open in the store, where Faust looks for it
first: the rebalance opens none. Faust's recovery after the rebalance then reads only what was written
since: seconds of changes, not every sensor's state. A restarted worker reads, the same way, the
tail written while it was away. Measured: 36,000-79,000 records read in 0.5-1.3 s before joining,
Faust's restore after the rebalance 0.2-0.45 s, and the moved partitions waited 2.8 s (1.8-3.1)
(with the rebalance's full collections gone too: ``faust_fixes``).

The cost: each worker keeps every partition's state on its disk (its standby replicas already held
most of it), and the reading before it joins (nothing waits on it: the group does not know the
worker yet). A table store in memory (``SAFECITY_WORKER__STORE=memory://``) has nothing to warm.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from deploy.kafka_topics import client_args
from models.settings import KafkaSettings

FETCH_TIMEOUT_MS = 1000


def table_stores(app: Any) -> list[tuple[str, Any]]:
    """Each RocksDB-stored table of ``app`` as (its changelog topic, its store). Call it outside any
    event loop, as the app is built: a store is a service of the app, on the app's loop."""
    from faust.stores import rocksdb

    return [(t.changelog_topic.get_topic_name(), t.data) for t in app.tables.values()
            if isinstance(t.data, rocksdb.Store)]


def before_joining(app: Any, kafka: KafkaSettings) -> tuple[int, float]:
    """``read_changelogs`` for ``app`` (built, not started), on a loop of its own: the records read
    and the seconds it took (logged by the caller: the worker's logging starts with Faust's)."""
    started, stores = time.monotonic(), table_stores(app)
    read = asyncio.run(read_changelogs(stores, kafka)) if stores else 0
    return read, time.monotonic() - started


async def read_changelogs(stores: list[tuple[str, Any]], kafka: KafkaSettings) -> int:
    """Bring each table store (``table_stores``) up to its changelog's end; returns the number of
    changelog records read."""
    read = 0
    consumer = AIOKafkaConsumer(**client_args(kafka), group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        for topic, store in stores:
            read += await _read_table(consumer, topic, store)
    finally:
        await consumer.stop()
    return read


async def _read_table(consumer: AIOKafkaConsumer, topic: str, store: Any) -> int:
    """One table's changelog into its store. Each partition's database is opened here and left open
    in the store, where Faust looks first: the rebalance then opens none (under load, 35-85 ms each,
    one after another on the event loop, while the partitions taken over wait)."""
    from faust.stores import rocksdb

    partitions = consumer.partitions_for_topic(topic)
    if not partitions:  # not created yet: Faust creates it, and there is nothing to read
        return 0
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    ends = await consumer.end_offsets(tps)
    starts: dict[TopicPartition, int] = {}
    for tp in tps:
        db = store._db_for_partition(tp.partition)  # Faust's own open, kept in the store
        persisted = db.get(store.offset_key)
        start = int(persisted) + 1 if persisted is not None else 0
        if start < ends[tp]:  # else up to date (or ahead: a recreated topic, which Faust's recovery handles)
            starts[tp] = start
    if not starts:
        return 0
    consumer.assign(list(starts))
    for tp, start in starts.items():
        consumer.seek(tp, start)
    read, behind = 0, set(starts)
    while behind:
        batch = await consumer.getmany(*behind, timeout_ms=FETCH_TIMEOUT_MS, max_records=10_000)
        for tp, records in batch.items():
            if records:
                writes = rocksdb.rocksdict.WriteBatch(raw_mode=True)
                for r in records:
                    if r.value is None:
                        writes.delete(r.key)
                    else:
                        writes.put(r.key, r.value)
                db = store._db_for_partition(tp.partition)
                db.write(writes)
                db.put(store.offset_key, str(records[-1].offset).encode())
                read += len(records)
        for tp in list(behind):
            if await consumer.position(tp) >= ends[tp]:  # compaction may leave the last offsets empty
                behind.discard(tp)
    return read
