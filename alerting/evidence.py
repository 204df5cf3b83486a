"""Reading an alert's evidence back from the event log: the alert names the device, the event and
its time; the event is on Kafka (the device's partition, as ingest's producer keyed it) for as long
as the topic keeps it. Nothing is copied elsewhere: a snapshot or a registration is gone when its
retention ends, and so is the evidence.

- ``find_registration``: a person lead's guest (opened, audited, by ``AlertService.open_subject``);
- ``plate_snapshot``: the checkpoint snapshot of a plate read (a vehicle lead's picture);
- ``camera_frame``: the last frame a camera sent before the alert's time (a camera alert's picture).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from deploy.kafka_topics import client_args
from models import schemas, topics
from models.schemas import CameraFrame, HotelRegistration, PlateRead
from models.sealed import Sealer, SealError
from models.settings import KafkaSettings
from models.topics import MessageKind
from processors.watchlists import partitions_of

LOOK_BEFORE = timedelta(hours=1)  # an event may reach Kafka before (or long after) the time the alert names
FRAME_LOOK_BEFORE = timedelta(minutes=15)


async def scan_key(kafka: KafkaSettings, topic: str, key: bytes, since: datetime,
                   visit: Callable[[bytes], bool]) -> None:
    """Hand every value stored under ``key`` from ``since`` (Kafka's record time) to the end, in
    order, to ``visit``; stop early when it returns True."""
    consumer = AIOKafkaConsumer(**client_args(kafka), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = sorted(await partitions_of(consumer, topic))
        tp = TopicPartition(topic, DefaultPartitioner()(key, parts, parts))  # where the producer put it
        consumer.assign([tp])
        start = (await consumer.offsets_for_times({tp: int(since.timestamp() * 1000)}))[tp]
        end = (await consumer.end_offsets([tp]))[tp]
        if start is None:
            return
        consumer.seek(tp, start.offset)
        while await consumer.position(tp) < end:
            for records in (await consumer.getmany(tp, timeout_ms=1000, max_records=500)).values():
                for r in records:
                    if r.offset < end and r.key == key and visit(r.value or b""):
                        return
    finally:
        await consumer.stop()


async def find_registration(kafka: KafkaSettings, sealer: Sealer, hotel: str, registration_id: str,
                            seen_at: datetime) -> HotelRegistration | None:
    topic, key, found = topics.KAFKA_TOPICS[MessageKind.REGISTRATION], hotel.encode(), []

    def visit(value: bytes) -> bool:
        try:
            reg = schemas.decode_event(MessageKind.REGISTRATION, sealer.open(value, topic, key))
        except (SealError, schemas.SchemaError):
            return False
        if reg.registration_id == registration_id:
            found.append(reg)
        return bool(found)

    await scan_key(kafka, topic, key, seen_at - LOOK_BEFORE, visit)
    return found[0] if found else None


async def plate_snapshot(kafka: KafkaSettings, checkpoint: str, read_id: str, seen_at: datetime) -> bytes | None:
    topic, found = topics.KAFKA_TOPICS[MessageKind.PLATE_READ], []

    def visit(value: bytes) -> bool:
        try:
            read: PlateRead = schemas.decode_event(MessageKind.PLATE_READ, value)
        except schemas.SchemaError:
            return False
        if read.read_id == read_id:
            found.append(read.snapshot_jpeg)
            return True
        return False

    await scan_key(kafka, topic, checkpoint.encode(), seen_at - LOOK_BEFORE, visit)
    return found[0] if found else None


async def camera_frame(kafka: KafkaSettings, camera: str, at: datetime) -> bytes | None:
    """The camera's last frame (or checkpoint snapshot) captured at or before ``at``."""
    best: list[CameraFrame] = []

    def visit(value: bytes) -> bool:
        try:
            frame: CameraFrame = schemas.decode_event(MessageKind.FRAME, value)
        except schemas.SchemaError:
            return False
        if frame.captured_at <= at and (not best or frame.captured_at >= best[0].captured_at):
            best[:] = [frame]
        return frame.captured_at > at + timedelta(minutes=1)  # sent in order: later ones are past it

    for topic in (topics.KAFKA_TOPICS[MessageKind.FRAME], topics.KAFKA_SNAPSHOTS):
        await scan_key(kafka, topic, camera.encode(), at - FRAME_LOOK_BEFORE, visit)
    return best[0].image if best else None
