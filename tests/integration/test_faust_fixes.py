"""The rewind Faust's rebalance relies on, against the real Kafka (see processors/faust_fixes.py)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata

from processors.faust_fixes import rewind_uncommitted

pytestmark = pytest.mark.integration


def test_seeking_back_to_committed_reads_again_what_was_never_committed(stack, settings):
    async def scenario() -> None:
        bootstrap = settings.kafka.bootstrap
        topic = f"it-rewind-{uuid.uuid4().hex[:6]}"
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic(topic, 1, 1)])
        await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        for i in range(5):
            await producer.send_and_wait(topic, f"r{i}".encode(), partition=0)
        await producer.stop()

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
