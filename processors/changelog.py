"""Tables whose changelog records leave in batches, and a store without a second log.

**Batches.** Faust sends a table's changelog one record at a time: every ``table[key] = value``
makes a ``FutureMessage`` queued in Faust's producer buffer, whose task hands it to aiokafka's
``send`` (a second future per record), and each acknowledgement writes the partition's persisted
offset into RocksDB, again per record. py-spy on the worker at 2,500 gas readings/s: about a
quarter of the event loop's busy time was this path, for one small record per reading.

A ``BatchedTable`` is Faust's ``Table`` except for ``on_key_set`` and ``on_key_del``: the record
waits in memory (the latest value of each key, per partition) and ``ChangelogBatches.flush`` sends
each partition's records as one aiokafka batch (``send_batch``: one future per batch) and writes
the persisted offset once per batch. The local store is still written at once, so reads, standbys
and recovery see no difference: the changelog topic holds the same records (a key changed twice
between flushes is written once, with its latest value, as compaction would keep it).

At least once is kept: the app flushes the batches inside every producer flush, which Faust does
right before it commits offsets, when partitions are revoked (after its agents finished) and on
stop. So an offset is committed only once the changelog records of its events are acknowledged. A
batch that fails makes the next flush raise, so nothing more is committed; the worker crashes, as
it does when Faust's own changelog send fails, and its events are read again.

**The store's write-ahead log** (``SAFECITY_WORKER__STORE_WAL``, off by default). RocksDB logs
every put to its own write-ahead file before the memtable (a ``write()`` per put: 3 µs against
1 µs without, here). For a Faust table that log is a second copy of what the changelog topic
already holds durably. Without it a crashed worker's store reopens at its last memtable flush,
with the persisted offset of that moment (the offset lives in the same column family, so the two
stay consistent), and Faust's recovery reads the changelog from there: more changelog to read
after a crash, nothing lost. A clean stop flushes the memtable (RocksDB does, on close).
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any

import faust
from faust.exceptions import ProducerSendError
from faust.types import TP

logger = logging.getLogger(__name__)


class ChangelogBatches:
    """The batched tables of one app, and their flush."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.tables: list[BatchedTable] = []
        self._lock: asyncio.Lock | None = None
        self.failed: BaseException | None = None

    def table(self, name: str, **kwargs: Any) -> BatchedTable:
        """A batched table registered with the app, as ``app.Table`` would."""
        app = self.app
        table = app.tables.add(BatchedTable(app, name=name, beacon=app.tables.beacon, **kwargs))
        table.batches = self
        self.tables.append(table)
        return table

    async def flush(self) -> None:
        """Hand every pending record to the producer, one batch per partition (and more when a
        partition's records exceed the producer's batch size). Returns once the batches are in
        aiokafka's accumulator; the producer flush that follows waits for their acknowledgement.
        Flushes run one at a time, so a key's records reach the topic in the order they were set."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            self.raise_failed()
            producer = None
            for table in self.tables:
                pending = table.take_pending()
                if not pending:
                    continue
                if producer is None:
                    producer = self.app.producer._producer  # aiokafka's, under Faust's
                if producer is None:  # stopped: these events' offsets were not committed either
                    logger.warning("producer stopped: %d changelog records of %s not sent (their events "
                                   "are read again)", sum(map(len, pending.values())), table.name)
                    continue
                topic = table.changelog_topic.get_topic_name()
                for partition, records in pending.items():
                    await self._send(producer, table, topic, partition, list(records.items()))

    async def _send(self, producer: Any, table: BatchedTable, topic: str, partition: int,
                    records: list[tuple[bytes, bytes | None]]) -> None:
        start = 0
        while start < len(records):
            batch = producer.create_batch()
            end = start
            while end < len(records):  # the first record always fits (aiokafka's batch builder)
                key, value = records[end]
                if batch.append(key=key, value=value, timestamp=None) is None:
                    break
                end += 1
            batch.close()
            future = await producer.send_batch(batch, topic, partition=partition)
            future.add_done_callback(partial(self._on_sent, table, TP(topic, partition), end - start))
            start = end

    def _on_sent(self, table: BatchedTable, tp: TP, count: int, future: asyncio.Future) -> None:
        if future.cancelled():
            self.failed = self.failed or asyncio.CancelledError(f"changelog batch to {tp} cancelled")
        elif (exc := future.exception()) is not None:
            self.failed = self.failed or exc
            logger.error("a changelog batch of %d records to %s failed: %r", count, tp, exc)
        else:  # as Faust's _on_changelog_sent, once per batch: its last record's offset
            table.data.set_persisted_offset(tp, future.result().offset + count - 1)

    def raise_failed(self) -> None:
        """Raise if a batch failed: the offsets of its events must not be committed."""
        if self.failed is not None:
            raise ProducerSendError(f"a changelog batch failed: {self.failed!r}") from self.failed


class BatchedTable(faust.Table):
    """Faust's table, with its changelog records gathered for ``ChangelogBatches`` instead of sent
    one by one. Like Faust's, it changes only inside a stream (the partition is the event's)."""

    batches: ChangelogBatches

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: dict[int, dict[bytes, bytes | None]] = {}

    def _gather(self, key: bytes, value: bytes | None) -> int:
        if self.app.in_transaction:  # exactly once persists offsets at commit: Faust's own path
            raise RuntimeError("batched changelogs are for at-least-once processing")
        partition = self.partition_for_key(key)
        if partition is None:
            raise RuntimeError(f"table {self.name}: batched changelogs need the event's partition")
        records = self._pending.get(partition)
        if records is None:
            records = self._pending[partition] = {}
        records[key] = value  # a key changed again before the flush: only its latest value is sent
        return partition

    def on_key_set(self, key: Any, value: Any) -> None:
        partition = self._gather(key, value)
        self._maybe_set_key_ttl(key, partition)
        self._sensor_on_set(self, key, value)

    def on_key_del(self, key: Any) -> None:
        partition = self._gather(key, None)  # a tombstone, as Faust sends
        self._maybe_del_key_ttl(key, partition)
        self._sensor_on_del(self, key)

    def take_pending(self) -> dict[int, dict[bytes, bytes | None]]:
        pending, self._pending = self._pending, {}
        return pending


def store_without_wal() -> None:
    """Open every RocksDB table store (rocksdict) with its write-ahead log off (see the module)."""
    from faust.stores import rocksdb

    options = rocksdb.RocksDBOptions
    if getattr(options.open, "safecity_no_wal", False):
        return
    faust_open = options.open

    def open(self: Any, path: Any, *, read_only: bool = False) -> Any:
        db = faust_open(self, path, read_only=read_only)
        if self.use_rocksdict and not read_only:
            write = rocksdb.rocksdict.WriteOptions()
            write.disable_wal = True
            db.set_write_options(write)
        return db

    open.safecity_no_wal = True  # type: ignore[attr-defined]
    open.faust_open = faust_open  # type: ignore[attr-defined]
    options.open = open  # type: ignore[method-assign]


def store_with_wal() -> None:
    """Undo ``store_without_wal`` (RocksDB's default: every put logged)."""
    from faust.stores import rocksdb

    faust_open = getattr(rocksdb.RocksDBOptions.open, "faust_open", None)
    if faust_open is not None:
        rocksdb.RocksDBOptions.open = faust_open  # type: ignore[method-assign]
