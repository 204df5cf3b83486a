"""Showing a person lead's subject to a supervisor: the one place the alert service opens a guest's
registration, audited before it does (``AlertService.open_subject``).

The lead names the registration (``details.registration_id``), the hotel (the alert's device) and when
the guest was seen; the registration is read back from the registrations topic (the hotel's partition,
from shortly before that time) and opened with the data key. Nothing of it is logged or stored; after
``SAFECITY_KAFKA__PERSONAL_RETENTION_H`` it is gone from Kafka, and the lead can no longer be opened."""

from __future__ import annotations

from datetime import datetime, timedelta

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from deploy.kafka_topics import client_args
from models import schemas, topics
from models.schemas import HotelRegistration
from models.sealed import Sealer, SealError
from models.settings import KafkaSettings
from models.topics import MessageKind
from processors.watchlists import partitions_of

LOOK_BEFORE = timedelta(hours=1)  # a registration may reach Kafka before the time the lead names


async def find_registration(kafka: KafkaSettings, sealer: Sealer, hotel: str, registration_id: str,
                            seen_at: datetime) -> HotelRegistration | None:
    topic = topics.KAFKA_TOPICS[MessageKind.REGISTRATION]
    consumer = AIOKafkaConsumer(**client_args(kafka), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = sorted(await partitions_of(consumer, topic))
        key = hotel.encode()
        tp = TopicPartition(topic, DefaultPartitioner()(key, parts, parts))  # where ingest's producer put it
        consumer.assign([tp])
        start = (await consumer.offsets_for_times({tp: int((seen_at - LOOK_BEFORE).timestamp() * 1000)}))[tp]
        end = (await consumer.end_offsets([tp]))[tp]
        if start is None:
            return None
        consumer.seek(tp, start.offset)
        while await consumer.position(tp) < end:
            for records in (await consumer.getmany(tp, timeout_ms=1000, max_records=2000)).values():
                for r in records:
                    if r.key != key or r.offset >= end:
                        continue
                    try:
                        reg = schemas.decode_event(MessageKind.REGISTRATION, sealer.open(r.value or b"", topic, key))
                    except (SealError, schemas.SchemaError):
                        continue
                    if reg.registration_id == registration_id:
                        return reg
        return None
    finally:
        await consumer.stop()
