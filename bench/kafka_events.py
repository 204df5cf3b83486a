"""Counting ingest's output in Kafka by events, not records: a gas record may be a pack of several
readings (``topics.PACKED_KINDS``, ``schemas.pack``), so a topic's offsets no longer count readings."""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer, TopicPartition

from deploy.kafka_topics import client_args
from models import schemas
from models.settings import Settings

def events_in(value: bytes | None) -> int:
    """How many events a record carries: a pack's elements, else one (``schemas.unpack``)."""
    return len(schemas.unpack(value or b""))


async def end_offsets(settings: Settings, topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(**client_args(settings.kafka), group_id=None)
    await consumer.start()
    try:
        return await consumer.end_offsets([TopicPartition(topic, p) for p in range(settings.kafka.partitions)])
    finally:
        await consumer.stop()


async def wait_for_events(settings: Settings, offsets: dict[TopicPartition, int], count: int,
                          timeout: float) -> tuple[int, float]:
    """Read from ``offsets`` until ``count`` events are there (or ``timeout`` s have passed): the
    events found, and the latest Kafka timestamp among their records (the producer's send time, s)."""
    consumer = AIOKafkaConsumer(**client_args(settings.kafka), group_id=None, enable_auto_commit=False,
                                max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        for tp, offset in offsets.items():
            consumer.seek(tp, offset)
        found, last, deadline = 0, 0.0, time.monotonic() + timeout
        while found < count and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for r in records:
                    found += events_in(r.value)
                    last = max(last, r.timestamp / 1000)
        return found, last
    finally:
        await consumer.stop()
