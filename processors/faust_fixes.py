"""Two fixes to Faust's consumer, applied when the worker's app is built (``apply()``).

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

**Busy partitions held back by a quiet fetch.** Faust builds its consumer with
``fetch_max_wait_ms=1500``. aiokafka sends one fetch at a time to a broker, and leaves out the
partitions whose fetched records are still being processed; when every partition in that fetch is
quiet, the broker holds it for the whole wait, and the busy partitions, processed by then, wait
behind it. Found while a watch list was re-imported: the worker's loop was busy but never blocked
for longer than 0.4 s, plate reads reached Kafka without a gap, yet Faust's ``getmany`` waited its
whole 1 s timeout every 1.6 s with plate reads waiting in Kafka (logged: 0 or ~1,200 reads per
call), and matching paused 1.5 s. With the wait set to ``SAFECITY_WORKER__FETCH_MAX_WAIT_MS`` (50)
the longest pause is 0.7 s (0.6-0.7) against 1.5 s (1.5-1.5), medians of 3 (the README's performance
section); a quiet worker sends at most 20 fetches a second more.
"""

from __future__ import annotations

from collections.abc import Mapping

import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

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


FETCH_MAX_WAIT_MS = [1500]  # Faust's own; apply() sets the worker's (the consumers Faust creates from then on)


def apply(fetch_max_wait_ms: int) -> None:
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    FETCH_MAX_WAIT_MS[0] = fetch_max_wait_ms
    if getattr(AIOKafkaConsumerThread.seek_to_committed, "safecity_fix", False):
        return

    create_worker_consumer = AIOKafkaConsumerThread._create_worker_consumer

    def _create_worker_consumer(self, *args, **kwargs) -> AIOKafkaConsumer:
        consumer = create_worker_consumer(self, *args, **kwargs)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS[0]  # read when the consumer starts its fetcher
        return consumer

    AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer  # type: ignore[method-assign]

    async def seek_to_committed(self) -> Mapping[TopicPartition, int]:
        consumer = self._ensure_consumer()
        reset = self.app.conf.consumer_auto_offset_reset

        async def seek() -> Mapping[TopicPartition, int]:
            committed = await consumer.seek_to_committed()
            rewound = await rewind_uncommitted(consumer, committed, reset)
            if rewound:
                logger.info("seek to committed: %d partition(s) without a committed offset start over (%s)",
                            len(rewound), reset)
            return committed

        return await self.call_thread(seek)

    seek_to_committed.safecity_fix = True  # type: ignore[attr-defined]
    AIOKafkaConsumerThread.seek_to_committed = seek_to_committed  # type: ignore[method-assign]
