"""One fix to Faust's consumer, applied when the worker's app is built (``apply()``).

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


def apply() -> None:
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    if getattr(AIOKafkaConsumerThread.seek_to_committed, "safecity_fix", False):
        return

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
