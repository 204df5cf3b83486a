"""The watch lists in every worker: a replica of the compacted watch-list topics (read in full by
each worker, like a Faust GlobalTable), and the retro-hunt scan over recent reads."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, TopicPartition
from deploy.kafka_topics import client_args

from models import schemas, topics
from models.schemas import SchemaError
from models.settings import KafkaSettings
from models.watchlist import PersonEntry, VehicleEntry
from processors.rules.watchlist import PersonIndex, VehicleIndex

logger = logging.getLogger(__name__)

# An import is applied in slices of at most APPLY_BUSY_S, each followed by a real pause of APPLY_PAUSE_S:
# the replica takes at most about a third of the worker's loop, live matching and gas alarms the
# rest. (Yielding a single turn between slices was not enough: a plate read needs several turns, and
# each one waited for a slice, so right after a 1M import the worker matched 33 reads/s of 500.)
APPLY_BUSY_S = 0.002
APPLY_PAUSE_S = 0.004
# Until the lists are loaded no plate read or registration can be matched (they wait for ``ready``), so
# the first load takes most of the loop: slices of 10 ms, each followed by a 1 ms pause in which gas
# alarms and every other agent run (they wait at most one slice).
LOAD_BUSY_S = 0.010
LOAD_PAUSE_S = 0.001
TYPES = {topics.KAFKA_WATCHLIST_VEHICLES: VehicleEntry, topics.KAFKA_WATCHLIST_PERSONS: PersonEntry}


class WatchlistReplica:
    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self.vehicles = VehicleIndex()
        self.persons = PersonIndex()
        for index in (self.vehicles, self.persons):
            index.maintain_inline(False)  # reclaims and merges on a thread (maintain())
        self.ready = asyncio.Event()
        self.listeners: list[Callable[[str, object | None], None]] = []

    def apply(self, topic: str, key: bytes, value: bytes | None) -> None:
        index = self.vehicles if topic == topics.KAFKA_WATCHLIST_VEHICLES else self.persons
        if value is None:  # tombstone: the entry was deleted
            index.remove(key.decode())
            return
        try:
            entry = schemas.decode_as(TYPES[topic], value)
        except SchemaError as exc:
            logger.error("unreadable watch-list entry on %s (%s); skipped", topic, exc.code)
            return
        index.upsert(entry)

    async def maintain(self) -> None:
        """The indexes' upkeep, each step built on a thread while the index as it is answers live
        matching (nothing writes to it: applying waits for this), then swapped in."""
        await self.reclaim()
        await self.merge()

    async def merge(self) -> None:
        """Merge each index part's overlay once it is due: a copy of the whole part (0.14 s at 12M
        keys, some 150 of them in a re-import of a million vehicles): inline, py-spy found the worker's
        loop busy for up to 1.8 s at a stretch during a re-import, most of it (86 %) in merges."""
        for name in ("vehicles", "persons"):
            for part in getattr(self, name).merges_due():
                at = part.merge_point()
                part.swap(*await asyncio.to_thread(part.merged), at=at)

    async def reclaim(self) -> None:
        """Once an index's removed entries outnumber its live ones, build it again without them on a
        thread and swap it in: the old one answers live matching meanwhile (nothing writes to it:
        applying waits for this), so a re-imported million entries never stop matching for the
        rebuild (inline, it held the loop for about a second)."""
        for name in ("vehicles", "persons"):
            index = getattr(self, name)
            if index.entries.needs_reclaim():
                started = time.monotonic()
                gc.disable()  # the rebuild allocates millions of objects: with the collector on, it ran
                try:          # full collections back to back (7 of 90 ms in 0.6 s), each holding the loop
                    fresh = await asyncio.to_thread(index.reclaimed)
                finally:
                    gc.enable()
                setattr(self, name, fresh)
                gc.freeze()  # the new index is long-lived: later collections need not walk it
                logger.info("watch list %s: %d removed entries reclaimed in %.1fs (%d live)", name,
                            index.entries.holes, time.monotonic() - started, len(getattr(self, name)))

    async def run(self) -> None:
        """Follow the watch-list topics for ever; restart the consumer after an error."""
        await follow_forever(self._follow, "watch-list replica")

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(**client_args(self.kafka), group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        try:
            parts = []
            for t in TYPES:
                parts += [TopicPartition(t, p) for p in await partitions_of(consumer, t)]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            end = await consumer.end_offsets(parts)
            started = time.monotonic()
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=1000)
                busy, pause = (APPLY_BUSY_S, APPLY_PAUSE_S) if self.ready.is_set() else (LOAD_BUSY_S, LOAD_PAUSE_S)
                slice_ends = time.monotonic() + busy
                for tp, records in batch.items():
                    for r in records:
                        self.apply(tp.topic, r.key, r.value)
                        if time.monotonic() >= slice_ends:  # an import never holds the loop (see APPLY_BUSY_S)
                            await asyncio.sleep(pause)
                            await self.maintain()
                            slice_ends = time.monotonic() + busy
                await self.maintain()
                if not self.ready.is_set() and await _caught_up(consumer, end):
                    gc.freeze()  # the lists and the worker's own setup are long-lived (see reclaim)
                    self.ready.set()
                    logger.info("watch lists loaded: %d vehicles, %d persons in %.1fs", len(self.vehicles),
                                len(self.persons), time.monotonic() - started)
        finally:
            await consumer.stop()


async def follow_forever(follow: Callable[[], Awaitable[None]], what: str) -> None:
    """Run a consumer loop for ever: after an error (a broker hiccup) it starts again in 2 s."""
    while True:
        try:
            await follow()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the loop must outlive a broker hiccup
            logger.exception("%s failed; restarting in 2 s", what)
            await asyncio.sleep(2)


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    parts = consumer.partitions_for_topic(topic)
    if not parts:
        await consumer._client.force_metadata_update()
        parts = consumer.partitions_for_topic(topic)
    return parts or {0}


async def _caught_up(consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]) -> bool:
    for tp, offset in end.items():
        if await consumer.position(tp) < offset:
            return False
    return True


async def stream_recent(kafka: KafkaSettings, topic: str, since: datetime) -> AsyncIterator[list[tuple[bytes, bytes]]]:
    """The records of ``topic`` from ``since`` up to the end as of now, in chunks (key, value) as
    fetched (each bounded by the consumer's fetch sizes), so a caller never holds them all."""
    consumer = AIOKafkaConsumer(**client_args(kafka), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in await partitions_of(consumer, topic)]
        consumer.assign(parts)
        starts = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in parts})
        end = await consumer.end_offsets(parts)
        todo = {}
        for tp in parts:
            if starts.get(tp) is None:
                continue
            consumer.seek(tp, starts[tp].offset)
            if starts[tp].offset < end[tp]:
                todo[tp] = end[tp]
        while todo:
            batch = await consumer.getmany(*todo, timeout_ms=1000, max_records=2000)
            chunk = []
            for tp, records in batch.items():
                chunk += [(r.key, r.value) for r in records if r.offset < todo.get(tp, 0)]
                if records and records[-1].offset >= todo[tp] - 1:
                    todo.pop(tp)
            for tp in list(todo):
                if await consumer.position(tp) >= todo[tp]:
                    todo.pop(tp)
            if chunk:
                yield chunk
    finally:
        await consumer.stop()


async def scan_recent(kafka: KafkaSettings, topic: str, since: datetime) -> list[tuple[bytes, bytes]]:
    """Every record of ``topic`` from ``since`` up to the end as of now (key, value), in memory."""
    return [record async for chunk in stream_recent(kafka, topic, since) for record in chunk]


def lookback_start(hours: float) -> datetime:
    return datetime.now(UTC) - timedelta(hours=hours)
