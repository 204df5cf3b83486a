"""Operator actions that change the watch lists: imports and deletions (alert actions go through the
alert API, see alerting/api.py).
Each is published to Kafka and written to the audit trail (who, when, what, a hash of the file),
and never logs names or ID numbers."""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import uuid
from datetime import UTC, datetime

import msgspec
from aiokafka import AIOKafkaProducer

from deploy.kafka_topics import client_args, ensure_topics
from models import schemas, topics
from models.schemas import AuditRecord
from models.watchlist import content_hash
from models.settings import Settings

LIST_TOPICS = {"vehicles": topics.KAFKA_WATCHLIST_VEHICLES, "persons": topics.KAFKA_WATCHLIST_PERSONS}


def actor(by: str | None) -> str:
    return (by or getpass.getuser() or "unknown")[:64]


async def _publish(settings: Settings, records: list[tuple[str, bytes, bytes | None]], audit: AuditRecord) -> None:
    """The audit request first (the alert service chains it into the trail), then the change: a change
    that fails halfway is audited as attempted; none is ever unaudited."""
    await ensure_topics(settings.kafka)
    producer = AIOKafkaProducer(**client_args(settings.kafka), acks="all", enable_idempotence=True,
                                linger_ms=20)
    await producer.start()
    try:
        await producer.send_and_wait(topics.KAFKA_AUDIT_REQUESTS, schemas.encode(audit), key=audit.by.encode())
        for topic, key, value in records:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def request_audit(settings: Settings, audit: AuditRecord) -> None:
    """An audit record for a change made outside the alert API (the first admin, say)."""
    asyncio.run(_publish(settings, [], msgspec.structs.replace(audit, request_id=audit.request_id or uuid.uuid4().hex)))


async def _listed(settings: Settings, kind: str) -> dict[str, str]:
    """Entry id -> content hash of what the watch-list topic holds now (the last record per key)."""
    from processors.watchlists import TYPES, scan_recent

    topic = LIST_TOPICS[kind]
    await ensure_topics(settings.kafka)
    current: dict[str, str] = {}
    for key, value in await scan_recent(settings.kafka, topic, datetime(1970, 1, 1, tzinfo=UTC)):
        if value is None:
            current.pop(key.decode(), None)
        else:
            current[key.decode()] = content_hash(schemas.decode_as(TYPES[topic], value))
    return current


def import_list(settings: Settings, kind: str, data: bytes, entries: list, by: str | None, source: str) -> AuditRecord:
    """Publish the entries that are new or changed (by content hash); an unchanged entry keeps when it
    was listed, so a re-import neither re-lists it nor hunts for it again."""
    now = datetime.now(UTC)
    listed = asyncio.run(_listed(settings, kind))
    changed = [e for e in entries if listed.get(e.entry_id) != content_hash(e)]
    audit = AuditRecord(action=f"watchlist-import-{kind}", by=actor(by), at=now, target=source[:300],
                        sha256=hashlib.sha256(data).hexdigest(), count=len(changed),
                        detail=f"{len(entries) - len(changed)} of {len(entries)} entries unchanged",
                        request_id=uuid.uuid4().hex)
    records = [(LIST_TOPICS[kind], e.entry_id.encode(), schemas.encode(msgspec.structs.replace(e, listed_at=now)))
               for e in changed]
    asyncio.run(_publish(settings, records, audit))
    return audit


def delete_entry(settings: Settings, kind: str, entry_id: str, by: str | None, reason: str) -> AuditRecord:
    audit = AuditRecord(action=f"watchlist-delete-{kind}", by=actor(by), at=datetime.now(UTC), target=entry_id,
                        count=1, detail=reason[:500], request_id=uuid.uuid4().hex)
    asyncio.run(_publish(settings, [(LIST_TOPICS[kind], entry_id.encode(), None)], audit))
    return audit
