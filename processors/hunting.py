"""Retro-hunts in their own process (one, at a lower CPU priority), the way images have theirs.

A hunt builds an index of up to 200,000 new entries and matches a day of events against it: seconds
of pure Python. On a thread of the worker it held the GIL against the event loop, and every turn
of the loop then waited for the GIL: right after a million-entry import the worker processed 30 of
500 plate reads a second for a while (gas alarms share that loop). Here the process reads the
look-back window from Kafka itself (nothing large crosses between processes: the entries as their
raw records in, the hits as encoded alerts out), so the worker's loop only waits for the answer.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime

from models import schemas
from models.schemas import SchemaError
from models.settings import KafkaSettings
from models.topics import MessageKind
from models.watchlist import PersonEntry, VehicleEntry
from processors.rules import retro

NICE = 10


def hunt(kafka: KafkaSettings, topic: str, since: datetime, entries: list[bytes],
         kind: str) -> tuple[int, int, list[bytes]]:
    """In the hunt process: (entries readable, events matched, encoded alerts)."""
    from processors.watchlists import stream_recent

    what = MessageKind(kind)
    entry_type = VehicleEntry if what is MessageKind.PLATE_READ else PersonEntry
    decoded = []
    for raw in entries:
        try:
            decoded.append(schemas.decode_as(entry_type, raw))
        except SchemaError:
            continue  # the replica logs an unreadable entry; it is never hunted
    h = retro.Hunt(decoded, what)

    async def read() -> None:
        async for chunk in stream_recent(kafka, topic, since):
            h.feed(value for _, value in chunk)

    asyncio.run(read())
    return len(decoded), h.events, [schemas.encode(a) for a in h.alerts()]


def _lower_priority() -> None:
    try:
        os.nice(NICE)
    except OSError:  # not permitted here: the normal priority
        pass


class HuntProcess:
    def __init__(self) -> None:
        self.pool: ProcessPoolExecutor | None = None

    async def hunt(self, *args) -> tuple[int, int, list[bytes]]:
        if self.pool is None:
            self.pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_lower_priority)
        return await asyncio.get_running_loop().run_in_executor(self.pool, hunt, *args)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
