"""The fixes to Faust's consumer, against the real Kafka (see processors/faust_fixes.py): the rewind
its rebalance relies on, busy partitions not held back by a fetch of quiet ones, and the inline
hand-off of records when most hand-offs must wait."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata

from processors import faust_fixes
from processors.faust_fixes import rewind_uncommitted

pytestmark = pytest.mark.integration


async def _new_topic(bootstrap: str, name: str, partitions: int = 1, records: int = 0) -> str:
    """Creates topic ``name`` and produces ``records`` records (b"r0", b"r1", ...) to its partition 0."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()
    if records:
        await _send(bootstrap, name, range(records), "r{}")
    return name


async def _send(bootstrap: str, topic: str, values: range, form: str = "{}") -> None:
    """Produces each of ``values`` (as ``form`` puts it) to ``topic``'s partition 0, in order."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in values:
            await producer.send(topic, form.format(i).encode(), partition=0)
        await producer.flush()
    finally:
        await producer.stop()


async def _run_until(app, got: list[int], n: int, timeout: float) -> None:
    """Runs the Faust ``app`` until its agent has put ``n`` values in ``got``, or ``timeout`` seconds."""
    await app.start()
    try:
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        await app.stop()


def test_seeking_back_to_committed_reads_again_what_was_never_committed(stack, settings):
    async def scenario() -> None:
        bootstrap = settings.kafka.bootstrap
        topic = await _new_topic(bootstrap, f"it-rewind-{uuid.uuid4().hex[:6]}", records=5)

        tp = TopicPartition(topic, 0)
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=f"it-rewind-{uuid.uuid4().hex[:6]}",
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        try:
            consumer.assign([tp])

            async def read_all() -> list[bytes]:
                got: list[bytes] = []
                while len(got) < 5:
                    got += [r.value for r in (await consumer.getmany(tp, timeout_ms=2000)).get(tp, [])]
                return got

            assert await read_all() == [f"r{i}".encode() for i in range(5)]
            # fetched, never committed: "seek back to committed" must start over, not stay at 5
            committed = await consumer.seek_to_committed(tp)
            assert committed == {tp: None}
            assert await consumer.position(tp) == 5  # aiokafka leaves it there: the records would be lost
            assert await rewind_uncommitted(consumer, committed) == [tp]
            assert await consumer.position(tp) == 0
            assert await read_all() == [f"r{i}".encode() for i in range(5)]
            # committed at 0 (nothing processed yet): the same
            await consumer.commit({tp: OffsetAndMetadata(0, "")})
            committed = await consumer.seek_to_committed(tp)
            assert committed == {tp: 0}
            await rewind_uncommitted(consumer, committed)
            assert await consumer.position(tp) == 0
            # committed further on: aiokafka's own seek does it, the rewind leaves it alone
            await consumer.commit({tp: OffsetAndMetadata(3, "")})
            committed = await consumer.seek_to_committed(tp)
            assert await rewind_uncommitted(consumer, committed) == [] and await consumer.position(tp) == 3
        finally:
            await consumer.stop()

    asyncio.run(scenario())


async def _held_back(bootstrap: str, fetch_max_wait_ms: int, fetch_min_bytes: int = 1) -> float:
    """Seconds until a busy partition's new record is delivered, when the record before it stayed
    unprocessed long enough for the consumer to send a fetch of the quiet partition alone."""
    topic = await _new_topic(bootstrap, f"it-quiet-{uuid.uuid4().hex[:6]}", partitions=2)
    busy, quiet = TopicPartition(topic, 0), TopicPartition(topic, 1)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=fetch_max_wait_ms,
                                fetch_min_bytes=fetch_min_bytes)
    await producer.start()
    await consumer.start()
    try:
        consumer.assign([busy, quiet])
        await producer.send_and_wait(topic, b"r0", partition=0)
        await asyncio.sleep(0.6)  # r0 fetched and not yet processed: the next fetch asks for the quiet one only
        assert [r.value for r in (await consumer.getmany(busy, quiet, timeout_ms=5000)).get(busy, [])] == [b"r0"]
        await producer.send_and_wait(topic, b"r1", partition=0)
        sent = time.monotonic()
        got = await consumer.getmany(busy, quiet, timeout_ms=5000)
        assert [r.value for r in got.get(busy, [])] == [b"r1"]
        return time.monotonic() - sent
    finally:
        await consumer.stop()
        await producer.stop()


def test_a_busy_partition_is_not_held_back_by_a_fetch_of_quiet_ones(stack, settings):
    async def scenario() -> tuple[float, float, int]:
        faust_default = await _held_back(settings.kafka.bootstrap, 1500)  # what Faust builds its consumer with
        ours = await _held_back(settings.kafka.bootstrap, settings.worker.fetch_max_wait_ms,
                                settings.worker.fetch_min_bytes)

        import faust  # the worker's consumer, as Faust creates it once the fix is applied

        faust_fixes.apply(settings.worker.fetch_max_wait_ms, fetch_min_bytes=settings.worker.fetch_min_bytes)
        app = faust.App(f"it-fix-{uuid.uuid4().hex[:6]}", broker=f"kafka://{settings.kafka.bootstrap}")
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        try:
            return faust_default, ours, (consumer._fetch_max_wait_ms, consumer._fetch_min_bytes)
        finally:
            await consumer.stop()

    faust_default, ours, configured = asyncio.run(scenario())
    assert faust_default > 0.8  # the record waited for the broker to give up on the quiet partition
    assert ours < 0.4, (ours, faust_default)
    assert configured == (settings.worker.fetch_max_wait_ms, settings.worker.fetch_min_bytes) == (10, 4096)


def test_hand_offs_that_wait_for_a_full_stream_buffer_all_arrive_once_in_order(stack, settings, tmp_path,
                                                                              monkeypatch):
    """The inline hand-off's other path, on the real Faust and Kafka: a slow agent behind a stream
    buffer of 4 records makes most hand-offs wait, so they continue in Faust's race (``Resumed``)
    and the fetch loop waits for them; every record still reaches the agent once, in order."""
    import faust

    n, waited = 300, []
    step_inline = faust_fixes.step_inline

    def counting(coro):
        rest = step_inline(coro)
        waited.append(rest is not None)
        return rest

    monkeypatch.setattr(faust_fixes, "step_inline", counting)
    faust_fixes.apply(settings.worker.fetch_max_wait_ms, inline_delivery=True)
    name = f"it-inline-{uuid.uuid4().hex[:6]}"
    app = faust.App(name, broker=f"kafka://{settings.kafka.bootstrap}", store="memory://", datadir=str(tmp_path),
                    stream_buffer_maxsize=4, web_enabled=False, topic_partitions=1, topic_replication_factor=1,
                    consumer_auto_offset_reset="earliest")
    topic = app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                      partitions=1)
    got: list[int] = []
    ahead: list[int] = []  # records handed off but not yet processed, as each is processed

    @app.agent(topic)
    async def slow(stream):
        async for value in stream:
            got.append(int(value))
            ahead.append(len(waited) - len(got))
            await asyncio.sleep(0.002)

    async def scenario() -> None:
        await _send(settings.kafka.bootstrap, await _new_topic(settings.kafka.bootstrap, name), range(n))
        await _run_until(app, got, n, 90)

    asyncio.run(scenario())
    assert got == list(range(n))
    assert sum(waited) > n // 2, (sum(waited), len(waited))  # most hand-offs waited for the buffer
    assert max(ahead) <= 8, max(ahead)  # and the fetch loop waited with them: the buffer's 4, and one waiting


def test_a_fetch_left_with_no_active_partition_takes_no_records(stack, settings):
    """aiokafka reads an empty set of partitions as every partition, and Faust's live set of active
    partitions empties during a recovery (processors/faust_fixes.py, "Paused partitions' records
    taken and dropped"): behind ``Only`` it takes nothing, and a partition added during the wait counts."""
    async def scenario() -> None:
        bootstrap = settings.kafka.bootstrap
        topic = await _new_topic(bootstrap, f"it-only-{uuid.uuid4().hex[:6]}", records=3)
        tp = TopicPartition(topic, 0)
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            consumer.assign([tp])
            fetcher = consumer._fetcher
            deadline = time.monotonic() + 10
            while tp not in fetcher._records and time.monotonic() < deadline:  # fetched, not yet taken
                await asyncio.sleep(0.05)
            live: set[TopicPartition] = set()  # no partition active (all paused)
            assert await fetcher.fetched_records(faust_fixes.Only(live), timeout=0.3) == {}
            assert await consumer.position(tp) == 0
            waiting = asyncio.ensure_future(fetcher.fetched_records(faust_fixes.Only(live), timeout=5))
            await asyncio.sleep(0.2)
            live.add(tp)  # resumed while the fetch waits
            for waiter in list(fetcher._fetch_waiters):  # woken as by a fetch response arriving
                fetcher._notify(waiter)
            taken = await waiting
            assert [r.value for r in taken[tp]] == [b"r0", b"r1", b"r2"]
            # aiokafka's own reading of the empty set: every partition's records, positions moved past them
            consumer.seek(tp, 0)
            while tp not in fetcher._records and time.monotonic() < deadline + 10:
                await asyncio.sleep(0.05)
            assert [r.value for r in (await fetcher.fetched_records(set(), timeout=0.3))[tp]] == [b"r0", b"r1", b"r2"]
            assert await consumer.position(tp) == 3
        finally:
            await consumer.stop()

    asyncio.run(scenario())


def test_records_fetched_while_the_partitions_are_sought_are_not_thrown_away(stack, settings, tmp_path, monkeypatch):
    """Records that arrive while a rebalance seeks the stream partitions to their committed offsets
    (processors/faust_fixes.py, "Records thrown away after the seek to committed"): Faust resumed the
    partitions first, so they were fetched and handed to the stream during the seek, and thrown away
    with the stream's buffer when the flow resumed, the position already past them. A worker restarts
    (its table restored from the changelog, so its fetcher runs during the recovery) and its seek is
    held open until a burst is in Kafka (with Faust's order, fetched and in the slow agent's buffer):
    every record must still be processed, without another rebalance."""
    import faust
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    n = 20
    faust_fixes.apply(settings.worker.fetch_max_wait_ms, fetch_min_bytes=settings.worker.fetch_min_bytes)
    name = f"it-seek-{uuid.uuid4().hex[:6]}"

    def worker(got: list[int]) -> faust.App:
        app = faust.App(name, broker=f"kafka://{settings.kafka.bootstrap}", store="memory://", datadir=str(tmp_path),
                        web_enabled=False, topic_partitions=1, topic_replication_factor=1,
                        consumer_auto_offset_reset="earliest")
        topic = app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                          partitions=1)
        seen = app.Table("seen", default=int, partitions=1)

        @app.agent(topic)
        async def slow(stream):
            async for value in stream:
                got.append(int(value))
                seen[value] += 1
                await asyncio.sleep(0.05)  # the rest of a burst waits in the stream's buffer

        return app

    seek = AIOKafkaConsumerThread.seek_to_committed
    held: list[list[int]] = []  # what the restarted worker had processed when its seek ended

    async def scenario() -> tuple[list[int], list[int]]:
        await _send(settings.kafka.bootstrap, await _new_topic(settings.kafka.bootstrap, name), range(3))
        first: list[int] = []
        await _run_until(worker(first), first, 3, 30)  # the table has a changelog now, and the group an offset
        again: list[int] = []

        async def seek_then_send(self):
            committed = await seek(self)  # the partition is sought; a burst comes before the flow resumes
            if not held:
                await _send(settings.kafka.bootstrap, name, range(3, 3 + n))
                deadline = time.monotonic() + 3
                while not again and time.monotonic() < deadline:  # Faust's order: the first is in process
                    await asyncio.sleep(0.05)
                held.append(list(again))
            return committed

        monkeypatch.setattr(AIOKafkaConsumerThread, "seek_to_committed", seek_then_send)
        await _run_until(worker(again), again, n, 30)
        return first, again

    first, again = asyncio.run(scenario())
    assert first == [0, 1, 2]
    assert held, "the restarted worker never sought its stream partition"
    assert again == list(range(3, 3 + n)), (again, held)
