"""The audit trail as a hash chain, pure: linking records and verifying a trail.

One writer (the alert service) appends every audit record to partition 0 of ``safecity.audit.v1``.
Each record carries its position (``seq``, from 0), the previous record's ``mac`` (``prev``), and its
own ``mac``: the HMAC-SHA256, under the audit key, of the record with ``mac`` empty. So:

- altering a record changes what its mac covers: verification fails at that record;
- removing one (``delete_records`` of the first ones, or any in the middle) leaves a gap in ``seq``
  and a ``prev`` that names no record: verification fails at the record after the gap;
- appending or inserting one (a backdated record by "chief-inspector") needs the audit key, which
  only the alert service and the auditors hold: without it the mac is wrong.

What a chain alone cannot show: the last records removed from the end. ``safecity audit verify``
prints the head (seq and mac) so an auditor can note it and compare later.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

import msgspec

from models import schemas
from models.schemas import AuditRecord

GENESIS = "genesis"


def mac_of(record: AuditRecord, key: bytes) -> str:
    body = schemas.encode(msgspec.structs.replace(record, mac=""))
    return hmac.new(key, body, hashlib.sha256).hexdigest()


@dataclass
class Chain:
    """The head of the trail: the next record's position and the last record's mac."""

    key: bytes
    next_seq: int = 0
    last_mac: str = GENESIS

    def link(self, record: AuditRecord) -> AuditRecord:
        """``record`` as the next link; the head moves only when the writer ``follow``s it (once the
        trail holds it), so a failed write never leaves a gap."""
        linked = msgspec.structs.replace(record, seq=self.next_seq, prev=self.last_mac, mac="")
        return msgspec.structs.replace(linked, mac=mac_of(linked, self.key))

    def follow(self, record: AuditRecord) -> None:
        """Take ``record`` (written, or read back from the trail) as the head."""
        self.next_seq, self.last_mac = record.seq + 1, record.mac


@dataclass(frozen=True)
class Broken:
    offset: int
    seq: int
    why: str

    def __str__(self) -> str:
        return f"broken at offset {self.offset} (seq {self.seq}): {self.why}"


def verify(trail: Iterable[tuple[int, bytes | None]], key: bytes) -> tuple[int, str, Broken | None]:
    """Check ``(offset, value)`` records of partition 0 in offset order: (records checked, the head's
    mac, the first broken link or None)."""
    expected_seq, expected_prev, n = 0, GENESIS, 0
    for offset, value in trail:
        try:
            record = schemas.decode_as(AuditRecord, value or b"")
        except schemas.SchemaError as exc:
            return n, expected_prev, Broken(offset, -1, f"not an audit record ({exc.code})")
        if record.seq != expected_seq:
            what = "records before it are missing" if record.seq > expected_seq else "a repeated or unchained record"
            return n, expected_prev, Broken(offset, record.seq, f"seq {record.seq} where {expected_seq} was due: {what}")
        if record.prev != expected_prev:
            return n, expected_prev, Broken(offset, record.seq, "it does not name the previous record")
        if not hmac.compare_digest(record.mac, mac_of(record, key)):
            return n, expected_prev, Broken(offset, record.seq, "its content does not match its mac (altered, or "
                                                                "written without the audit key)")
        expected_seq, expected_prev, n = record.seq + 1, record.mac, n + 1
    return n, expected_prev, None


# ---------------------------------------------------------------- Kafka adapter (the one writer)
class AuditTrail:
    """Appends to the trail for the alert service: its own operators' actions, and the requests the
    watch-list publisher puts on ``safecity.audit-requests.v1``. One at a time; after
    a failed write the head is read back from the trail before the next one."""

    RECENT = 10_000  # request ids remembered, so a request delivered twice is chained once

    def __init__(self, settings, producer, key: bytes) -> None:
        self.settings, self.producer = settings, producer
        self.chain = Chain(key)
        self.lock = asyncio.Lock()
        self.stale = True  # read the head before the first append
        self.requests: collections.OrderedDict[str, None] = collections.OrderedDict()

    async def _read_head(self) -> None:
        self.chain = Chain(self.chain.key)
        for _, value in await read_trail(self.settings.kafka, last=self.RECENT):
            try:
                record = schemas.decode_as(AuditRecord, value or b"")
            except schemas.SchemaError:
                continue  # not a record: `audit verify` names it; the chain goes on from the last one
            if record.seq >= 0:
                self.chain.follow(record)
            if record.request_id:
                self._remember(record.request_id)
        self.stale = False

    def _remember(self, request_id: str) -> None:
        self.requests[request_id] = None
        while len(self.requests) > self.RECENT:
            self.requests.popitem(last=False)

    async def append(self, record: AuditRecord) -> AuditRecord | None:
        """Chain ``record`` into the trail (None: a request already chained)."""
        from models import topics

        async with self.lock:
            if self.stale:
                await self._read_head()
            if record.request_id and record.request_id in self.requests:
                return None
            linked = self.chain.link(record)
            try:
                await self.producer.send_and_wait(topics.KAFKA_AUDIT, schemas.encode(linked),
                                                  key=record.by.encode(), partition=0)
            except BaseException:
                self.stale = True  # it may or may not be in the trail: read the head again
                raise
            self.chain.follow(linked)
            if record.request_id:
                self._remember(record.request_id)
            return linked

    async def consume_requests(self, on_bad) -> None:
        """Chain the tools' requests, committing each batch once it is in the trail."""
        from aiokafka import AIOKafkaConsumer

        from deploy.kafka_topics import client_args
        from models import topics

        s = self.settings
        consumer = AIOKafkaConsumer(topics.KAFKA_AUDIT_REQUESTS, **client_args(s.kafka),
                                    group_id=f"{s.alerts.group_id}-audit", enable_auto_commit=False,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=200)
                for records in batch.values():
                    for r in records:
                        try:
                            request = schemas.decode_as(AuditRecord, r.value or b"")
                        except schemas.SchemaError as exc:
                            await on_bad(exc.code, str(exc), topics.KAFKA_AUDIT_REQUESTS, r.value or b"")
                            continue
                        await self.append(msgspec.structs.replace(request, seq=-1, prev="", mac=""))
                if batch:
                    await consumer.commit()
        finally:
            await consumer.stop()


async def read_trail(kafka, last: int | None = None) -> list[tuple[int, bytes | None]]:
    """The records of the trail (partition 0) as (offset, value), up to its end as of now: all of them,
    or the ``last`` ones."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from deploy.kafka_topics import client_args
    from models import topics

    tp = TopicPartition(topics.KAFKA_AUDIT, 0)
    consumer = AIOKafkaConsumer(**client_args(kafka), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        start = (await consumer.beginning_offsets([tp]))[tp]
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, start if last is None else max(start, end - last))
        out: list[tuple[int, bytes | None]] = []
        while await consumer.position(tp) < end:
            for records in (await consumer.getmany(tp, timeout_ms=1000, max_records=5000)).values():
                out += [(r.offset, r.value) for r in records if r.offset < end]
        return out
    finally:
        await consumer.stop()
