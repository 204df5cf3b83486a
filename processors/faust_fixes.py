"""Six fixes to Faust (its consumer, its recovery and its RocksDB store), applied when the worker's app is built
(``apply()``).

**Records lost after a rebalance.** While a rebalance settles, Faust may throw away records it has
already fetched (its fetch loop stops iterating a batch when the flow is suspended, or when the
generation changed) and relies on "seek back to the committed offsets" to read them again. That
seek is aiokafka's ``seek_to_committed``, which only moves a partition whose committed offset is
above 0: for a partition that has no committed offset yet, or offset 0, it does nothing, so the
position stays past the thrown-away records and they are never processed. Faust then sees the jump
as a gap and commits over it.

Found by the two-worker failover test (``tests/integration/test_workers.py``): the surviving worker
took over a partition its dead peer had never committed; one reading (offset 10 of 24) never
reached the gas rule, and the alarm it belonged to did not clear. Run over and over (on a busy
machine, as in CI) about one run in eight lost a reading; the Faust log showed two seeks 7 ms apart,
messages 0-5 of that partition delivered between them, and its committed offset None.

The fix: after the seek, partitions with no committed offset go to the group's reset position
(``consumer_auto_offset_reset``: the beginning here) and those committed at 0 go to 0. A record
may then be processed twice (at least once): the gas rules and watch-list cooldowns recognise a
replayed event, and the alert service a repeated transition.

**Records thrown away after the seek to committed.** When a rebalance's recovery is done, Faust
resumes the stream partitions, then seeks them to their committed offsets (``perform_seek``: one
request per partition, a fraction of a second in all), then resumes the flow, which empties every
stream's buffer. The fetch loop runs all the while, so a partition already seeked can be fetched
and its records handed to the streams before the flow resumes; the emptying throws them away
unprocessed, the position is past them, and no seek brings them back: the partition's committed
offset stays below them until the next rebalance. Found with urgent gas readings (records of their
own, each a few in a burst): a worker taking over a partition processed its first records, then none
until the next rebalance; read back from the worker's log, records 76-98 were fetched and handed on
between the seek and the resume, 76-79 processed and committed, 80-98 never seen again, and the
failover test waited 300 s for the clears they carried (4 of 9 runs on a busy machine). The fix:
the stream partitions are sought while still paused, and resumed after (``on_recovery_completed``
and ``_resume_streams``, copies of Faust's with those two steps swapped), so nothing of them is
fetched before the flow resumes.

**Paused partitions' records taken and dropped.** Faust's fetch hands aiokafka its set of active
partitions, the live set, and aiokafka's ``fetched_records`` waits up to a second for records of
those partitions, reading the set as it wakes; but an empty set means "every partition" to it. A
rebalance's recovery resumes the changelog partitions and pauses them again when they are read,
so a fetch waiting with only those active wakes to an empty set, and takes the records of every
partition, the paused stream partitions' too; Faust drops them (not active), and aiokafka's
position is past them. Found by the test of the fix above: a burst that came during the seek was
taken this way in 3 of 6 runs, and never processed. The fix: aiokafka gets the live set behind an
object that is never empty to it (``Only``), so a partition resumed during the wait still counts,
and nothing else ever does.

**Busy partitions held back by a quiet fetch.** Faust builds its consumer with
``fetch_max_wait_ms=1500``. aiokafka sends one fetch at a time to a broker, and leaves out the
partitions whose fetched records are still being processed; when every partition in that fetch is
quiet, the broker holds it for the whole wait, and the busy partitions, processed by then, wait
behind it. Found while a watch list was re-imported: the worker's loop was busy but never blocked
for longer than 0.4 s, plate reads reached Kafka without a gap, yet Faust's ``getmany`` waited its
whole 1 s timeout every 1.6 s with plate reads waiting in Kafka (logged: 0 or ~1,200 reads per
call), and matching paused 1.5 s. With the wait set to ``SAFECITY_WORKER__FETCH_MAX_WAIT_MS`` (50)
the longest pause is 0.7 s (0.6-0.7) against 1.5 s (1.5-1.5), medians of 3
(docs/performance.md); a quiet worker sends at most 20 fetches a second more.

**A fetch per record or two.** With aiokafka's ``fetch_min_bytes`` of 1 a fetch returns the
moment anything is there, so a worker keeping up sends the next fetch at once and gets a record or
two: at 1,000 gas readings/s its CPU per reading was 0.51 ms (0.48-0.54), much of it in fetch
requests and responses on Faust's consumer thread, which also took the GIL from the event loop.
``SAFECITY_WORKER__FETCH_MIN_BYTES`` (4096) with a wait of 10 ms (``__FETCH_MAX_WAIT_MS``): 0.23 ms
(0.22-0.24). A reading waits at most those 10 ms for a fetch, the quiet fetch above included: gas
alert latency at 500 readings/s p50 28 ms, p99 42 ms against 25 and 39.

**Four tasks per record.** Faust's fetch loop hands each record to its stream with
``wait_first(callback(record), suspend_flow.wait())``: four new tasks (the callback, the suspend
event, the consumer's stopped and crashed events), an ``asyncio.wait`` and three cancellations, and
at least two turns of the event loop, for a hand-off that almost never waits (it waits only when a
stream's buffer is full, the producer's buffer is over its limit, or flow is suspended in a
rebalance). Profiled at 2,000 gas readings/s, the worker's loop was busy 89 % of the time, 11 % of
it in ``wait_first``. With ``SAFECITY_WORKER__INLINE_DELIVERY`` (on) the loop steps the callback
itself: one that finishes without waiting (the usual case) costs no task; one that waits is handed,
where it stopped, to the same ``wait_first`` race as before (``Resumed``), so a rebalance still
abandons a hand-off blocked on a full buffer exactly as Faust does. With fewer turns of the loop,
the producer's buffer of changelog records passes Faust's limit of 100 more often (mostly by 1-11
records) and the hand-off waits for it to drain (median 13 ms): backpressure that keeps the agents
ahead of the fetching (with a limit of 1,000, gas alert latency at 2,500 readings/s was p50 262 and
389 ms in two runs of 2, against 85 ms (83-110) with 100). Faust logs a warning and a line for each
of those waits, a dozen a second at 2,000 readings/s, so ``ProducerWaits`` counts them instead and
the worker logs one line a minute. Measured with the pipeline benchmark (``--rates 2000,4000
--repeat 3``, medians with the range) against ``=false``: the worker's CPU per reading at 4,000/s
0.224 ms (0.210-0.225) against 0.292 (0.284-0.294); gas alert latency at 2,000/s p99 95 ms (89-120)
against 335 (181-868), the worker's stage p99 73 ms (68-100) against 322 (162-849). (Since then the
tables' changelog records leave in batches (processors/changelog.py), not through Faust's producer
buffer; metric records and alerts still do, and the same limit applies to them.)

**A full garbage collection per table, at every rebalance.** Faust's RocksDB store ends
``revoke_partitions`` with ``gc.collect()``, so that a database it dropped is freed (and its lock
released) before the partition may be opened again. The table manager calls it for every table at
every rebalance, on the event loop, revoked partitions or not: seven tables, seven full collections.
In a worker that had just joined the group they were most of the second between its joining and
its recovery (its log's "opening partition" lines came in pairs ~100-180 ms apart, and py-spy put
1.2 s in ``revoke_partitions``), while the partitions it took over waited. A dropped database is
freed by reference counting the moment it is popped (nothing else refers to it, and no cycle), so
the fix pops it as Faust does and leaves collections to the collector (``safecity/collector.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine, Generator, Mapping, Set
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TP

logger = logging.getLogger(__name__)


async def rewind_uncommitted(consumer: AIOKafkaConsumer, committed: Mapping[TopicPartition, int | None],
                             reset: str = "earliest") -> list[TopicPartition]:
    """Move every partition that ``seek_to_committed`` left alone (no committed offset, or 0) to
    where a consumer without an offset starts; returns those partitions."""
    never = [tp for tp, offset in committed.items() if offset is None or offset < 0]
    zero = [tp for tp, offset in committed.items() if offset == 0]
    for tp in zero:
        consumer.seek(tp, 0)
    if never:
        if reset == "latest":
            await consumer.seek_to_end(*never)
        else:
            await consumer.seek_to_beginning(*never)
    return never + zero


class Only:
    """A set of partitions as aiokafka's ``Fetcher.fetched_records`` reads it (``if partitions and tp
    not in partitions``): the partitions in ``tps`` (a live set: it may change during the wait), and
    when it is empty none, not every partition."""

    __slots__ = ("tps",)

    def __init__(self, tps: Set[Any]) -> None:
        self.tps = tps

    def __bool__(self) -> bool:
        return True

    def __contains__(self, tp: object) -> bool:
        return tp in self.tps


class Resumed:
    """The rest of a coroutine that waited on its first step, as an awaitable a task can run: it
    hands the task what the coroutine waits on, and passes results, exceptions and cancellation
    back into it (what ``yield from`` does for a coroutine not yet started)."""

    __slots__ = ("coro", "waits_on")

    def __init__(self, coro: Coroutine, waits_on: Any) -> None:
        self.coro, self.waits_on = coro, waits_on

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, waits_on = self.coro, self.waits_on
        while True:
            try:
                sent = yield waits_on
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - cancellation included: the coroutine decides
                try:
                    waits_on = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    waits_on = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


class ProducerWaits(logging.Filter):
    """Counts Faust's per-wait log lines of its producer buffer (``wait_until_ebb``) instead of
    letting them through; ``take()`` returns and resets the count and the largest buffer seen."""

    def __init__(self) -> None:
        super().__init__()
        self.waits, self.largest = 0, 0

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("producer buffer full size "):
            self.waits += 1
            size = message.rsplit(" ", 1)[-1]
            self.largest = max(self.largest, int(size) if size.isdigit() else 0)
            return False
        return not message.startswith("producer flush took ")

    def take(self) -> tuple[int, int]:
        taken, self.waits, self.largest = (self.waits, self.largest), 0, 0
        return taken


PRODUCER_WAITS = ProducerWaits()


def step_inline(coro: Coroutine) -> Resumed | None:
    """Run ``coro`` now, up to its first wait: None if it finished (its exception, if any, is
    raised), else the rest of it (``Resumed``)."""
    try:
        waits_on = coro.send(None)
    except StopIteration:
        return None
    return Resumed(coro, waits_on)


async def _drain_messages(self: Any, fetcher: Any) -> None:  # pragma: no cover - the worker's fetch loop
    """Faust's ``Consumer._drain_messages`` (faust-streaming 0.15), with each record's hand-off
    stepped inline (``step_inline``) instead of raced in new tasks; otherwise the same steps (two
    nested conditions joined with ``and``)."""
    from faust.transport.consumer import CONSUMER_FETCHING

    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    set_flag, unset_flag = self.diag.set_flag, self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for
    yield_every, num_since_yield, sleep = 100, 0, asyncio.sleep
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(CONSUMER_FETCHING)
            ait: AsyncIterator = getmany(timeout=1.0)
            await self.sleep(0)
            if not self.should_stop:
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await sleep(0)
                        num_since_yield = 0
                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0)
                        if gap > 1 and r_offset and acks_enabled_for(message.topic):
                            await self._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._n_acked = 0
                            await self.commit()
                        rest = step_inline(callback(message))
                        if rest is not None:  # it waits (a full buffer, a rebalance): Faust's race
                            await self.wait_first(rest, self.suspend_flow.wait())
                        set_read_offset(tp, offset)
                    else:
                        self.log.dev("DROPPED MESSAGE ROFF %r: k=%r v=%r", offset, message.key, message.value)
                unset_flag(CONSUMER_FETCHING)
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(CONSUMER_FETCHING)


#: The faust-streaming release whose methods (``_drain_messages``, ``revoke_partitions``, and the
#: recovery's ``on_recovery_completed`` and ``_resume_streams``) are copied here, with the changes
#: described. With any other, ``apply()`` leaves Faust's own in place, and says so: a copy of another
#: release's method could skip what that release changed.
COPIED_FROM = "0.15."


def copies_fit(version: str) -> bool:
    """Whether this module's copies of Faust's methods are of faust-streaming ``version``."""
    return version.startswith(COPIED_FROM)


def install(cls: type, name: str, ours: Any, use_ours: bool) -> None:
    """``cls.name`` becomes ``ours``, or Faust's own again (kept as ``cls.faust_<name>`` the first time)."""
    faust_name = "faust_" + name.lstrip("_")
    if not hasattr(cls, faust_name):
        setattr(cls, faust_name, getattr(cls, name))
    setattr(cls, name, ours if use_ours else getattr(cls, faust_name))


FETCH_MAX_WAIT_MS = [1500]  # Faust's own; apply() sets the worker's (the consumers Faust creates from then on)
FETCH_MIN_BYTES = [1]  # aiokafka's default, as Faust leaves it


def apply(fetch_max_wait_ms: int, inline_delivery: bool = True, fetch_min_bytes: int = 1,
          faust_version: str | None = None) -> None:
    """The fixes, on Faust's classes (again on a second call, with the settings given then).
    ``faust_version`` is the installed faust-streaming's unless given (tests)."""
    import faust
    from faust.stores import rocksdb
    from faust.tables.recovery import Recovery
    from faust.transport.consumer import Consumer
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    FETCH_MAX_WAIT_MS[0] = fetch_max_wait_ms
    FETCH_MIN_BYTES[0] = fetch_min_bytes
    producer_log = logging.getLogger("faust.transport.producer")
    if PRODUCER_WAITS not in producer_log.filters:
        producer_log.addFilter(PRODUCER_WAITS)
    version = faust_version or faust.__version__
    copies = copies_fit(version)
    if not copies:
        logger.warning("faust-streaming %s: the worker's copies of its methods are of %sx, so it runs Faust's own "
                       "(the seek to committed after the streams resume, records handed on in Faust's tasks, a full "
                       "collection per table at a rebalance)",
                       version, COPIED_FROM)
    install(Consumer, "_drain_messages", _drain_messages, inline_delivery and copies)
    install(Recovery, "on_recovery_completed", on_recovery_completed, copies)
    install(Recovery, "_resume_streams", _resume_streams, copies)
    install(rocksdb.Store, "revoke_partitions", revoke_partitions, copies)
    if getattr(AIOKafkaConsumerThread.seek_to_committed, "safecity_fix", False):
        return

    create_worker_consumer = AIOKafkaConsumerThread._create_worker_consumer

    def _create_worker_consumer(self, *args, **kwargs) -> AIOKafkaConsumer:
        consumer = create_worker_consumer(self, *args, **kwargs)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS[0]  # read when the consumer starts its fetcher
        consumer._fetch_min_bytes = FETCH_MIN_BYTES[0]
        return consumer

    AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer  # type: ignore[method-assign]
    fetch_records = AIOKafkaConsumerThread._fetch_records

    async def _fetch_records(self, consumer: AIOKafkaConsumer, active_partitions: Set[TP], *args, **kwargs) -> Any:
        return await fetch_records(self, consumer, Only(active_partitions), *args, **kwargs)

    AIOKafkaConsumerThread._fetch_records = _fetch_records  # type: ignore[method-assign]

    async def seek_to_committed(self) -> Mapping[TopicPartition, int]:
        consumer = self._ensure_consumer()
        reset = self.app.conf.consumer_auto_offset_reset

        async def seek() -> Mapping[TopicPartition, int]:
            committed = await consumer.seek_to_committed()
            rewound = await rewind_uncommitted(consumer, committed, reset)
            if rewound:
                logger.info("seek to committed: %d partition(s) without a committed offset start over (%s): %s",
                            len(rewound), reset, ", ".join(sorted(f"{tp.topic}:{tp.partition}" for tp in rewound)))
            return committed

        return await self.call_thread(seek)

    seek_to_committed.safecity_fix = True  # type: ignore[attr-defined]
    AIOKafkaConsumerThread.seek_to_committed = seek_to_committed  # type: ignore[method-assign]


def revoke_partitions(self: Any, table: Any, tps: Set[TopicPartition]) -> None:
    """Faust's ``Store.revoke_partitions`` (faust-streaming 0.15) without its ``gc.collect()``: the
    popped database is freed, and its lock released, as its last reference goes."""
    for tp in tps:
        if tp.topic in table.changelog_topic.topics and self._dbs.pop(tp.partition, None) is not None:
            self.logger.info(f"closing db {tp.topic} partition {tp.partition}")


async def seek_then_resume(recovery: Any, consumer: Any, assignment: Set[TP]) -> None:
    """The stream partitions sought to their committed offsets while paused, then resumed: nothing of
    them is fetched (and handed on, to be thrown away when the flow resumes) before the seek."""
    if assignment:
        recovery.log.info("Seek stream partitions to committed offsets.")
        await recovery._wait(consumer.perform_seek(), timeout=recovery.app.conf.broker_request_timeout)
    consumer.resume_partitions({tp for tp in assignment if not recovery._is_changelog_tp(tp)})


async def on_recovery_completed(self: Any, generation_id: int = 0) -> None:  # pragma: no cover - the recovery
    """Faust's ``Recovery.on_recovery_completed`` (faust-streaming 0.15) with the seek before the
    resume (``seek_then_resume``); otherwise the same steps."""
    consumer = self.app.consumer
    self.log.info("Restore complete!")
    await self.app.on_rebalance_complete.send()
    self._set_recovery_ended()
    callback_coros = [asyncio.ensure_future(table.on_recovery_completed(self.actives_for_table[table],
                                                                         self.standbys_for_table[table]))
                      for table in self.tables.values()]
    if callback_coros:
        await asyncio.wait(callback_coros)
    assignment = consumer.assignment()
    if self.app.consumer_generation_id != generation_id:
        self.log.warning(f"Recovery rebalancing again app id {self.app.consumer_generation_id} param {generation_id}")
        return
    await seek_then_resume(self, consumer, assignment)
    self.completed.set()
    self.app.flow_control.resume()
    consumer.resume_flow()
    await self.app._fetcher.maybe_start()  # finally make sure the fetcher is running
    self.tables.on_actives_ready()
    if not self.app.assignor.assigned_standbys():
        self.tables.on_standbys_ready()
    self.app.on_rebalance_end()
    self.log.info("Worker ready")


async def _resume_streams(self: Any, generation_id: int = 0) -> None:  # pragma: no cover - a worker without tables
    """Faust's ``Recovery._resume_streams`` (faust-streaming 0.15, the recovery of a worker without
    tables) with the seek before the resume (``seek_then_resume``); otherwise the same steps."""
    app = self.app
    consumer = app.consumer
    await app.on_rebalance_complete.send()
    assignment = consumer.assignment()
    if self.app.consumer_generation_id != generation_id:
        self.log.warning("Recovery rebalancing again")
        return
    if assignment:
        await seek_then_resume(self, consumer, assignment)
    else:
        self.log.info("Resuming streams with empty assignment")
    self.completed.set()
    self.log.info("Resuming flow...")
    app.flow_control.resume()
    consumer.resume_flow()
    await app._fetcher.maybe_start()  # finally make sure the fetcher is running
    self.tables.on_actives_ready()
    self.tables.on_standbys_ready()
    app.on_rebalance_end()
    self.log.info("Worker ready")
