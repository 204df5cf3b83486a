"""Retro-hunts: a process of their own beside each worker (started and watched by it).

New or changed watch-list entries are hunted for in the events of the last ``retro_hours``, merged
per import: entries are gathered until the list topics are quiet for a second (or ``MAX_ENTRIES``
wait), then one hunt streams the look-back window once for all of them. The process has its own
Kafka consumer (group ``<app id>-retro``), its own producer for the hits (to the alerts topic, as
the worker sends its alerts), and a lower CPU priority (``background_nice``, 10).

Why a process: a hunt is seconds of pure Python (an index of up to 200,000 entries, a day of events
matched against it), and reading a million-entry import is a million records. Inside Faust's
consumer a long hunt filled the stream buffer and stalled every topic of the worker (a 1M import:
plate reads at 0-13/s for minutes); on a thread, or reading the import on the worker's loop, it
still competed for the GIL with the loop that gas alarms share (plate reads at 30-36 of 500/s right
after a 1M import). Here the worker's loop does none of it.

At least once: offsets are committed after a hunt's hits are in Kafka, so a hunt cut short is run
again and its hits are recognised as repeats by the alert service. Entries hunted again after a
restart find nothing new: events that arrived after an entry was listed were matched live, and
are skipped.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import time

from deploy.kafka_topics import client_args
from deploy.keys import pseudonyms, sealer
from models import schemas, topics
from models.schemas import SchemaError
from models.sealed import SealError
from models.settings import Settings
from models.topics import MessageKind
from processors.rules import retro
from processors.watchlists import TYPES, follow_forever, lookback_start, stream_recent
from safecity.priority import lower_priority

logger = logging.getLogger(__name__)

READ_SLICE = 1_000  # list records read per turn of this process's loop
KINDS = {topics.KAFKA_WATCHLIST_VEHICLES: MessageKind.PLATE_READ,
         topics.KAFKA_WATCHLIST_PERSONS: MessageKind.REGISTRATION}  # what each list is hunted in


class RetroHunter:
    MAX_ENTRIES = 200_000

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer = None
        self.pseudonyms = pseudonyms(settings)
        self.sealer = sealer(settings)

    async def run(self) -> None:
        await follow_forever(self._follow, "retro-hunter")

    async def _follow(self) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        s = self.settings
        consumer = AIOKafkaConsumer(*KINDS, **client_args(s.kafka),
                                    group_id=f"{s.worker.app_id}-retro", enable_auto_commit=False,
                                    auto_offset_reset="earliest", max_poll_interval_ms=3_600_000)
        self.producer = AIOKafkaProducer(**client_args(s.kafka), acks="all", enable_idempotence=True)
        await consumer.start()
        await self.producer.start()
        try:
            pending: dict[str, list] = {t: [] for t in KINDS}
            uncommitted = False
            while True:
                batch = await consumer.getmany(timeout_ms=1000, max_records=READ_SLICE)
                uncommitted = uncommitted or bool(batch)
                for tp, records in batch.items():
                    for r in records:
                        if r.value is None:
                            continue  # a deletion
                        try:
                            pending[tp.topic].append(schemas.decode_as(TYPES[tp.topic], r.value))
                        except SchemaError as exc:
                            logger.error("unreadable watch-list entry (%s); not hunted", exc.code)
                waiting = sum(map(len, pending.values()))
                if batch and waiting < self.MAX_ENTRIES:
                    continue  # an import is still arriving
                for topic, entries in pending.items():
                    if entries:
                        await self.hunt(entries, KINDS[topic])
                        entries.clear()
                if uncommitted:
                    await consumer.commit()
                    uncommitted = False
        finally:
            await consumer.stop()
            await self.producer.stop()

    def _opened(self, kind: MessageKind, source: str, key: bytes, value: bytes) -> bytes:
        """Registrations are sealed on Kafka: opened here, in memory, one chunk at a time."""
        if kind not in topics.PERSONAL_KINDS:
            return value
        try:
            return self.sealer.open(value or b"", source, key or b"")
        except SealError:
            return b""  # counted as unreadable by the hunt; the worker dead-letters it

    async def hunt(self, entries: list, kind: MessageKind) -> None:
        ws = self.settings.watchlist
        if ws.retro_hours <= 0:
            return
        started = time.monotonic()
        h = retro.Hunt(entries, kind, self.pseudonyms)
        source = topics.KAFKA_TOPICS[kind]
        async for chunk in stream_recent(self.settings.kafka, source, lookback_start(ws.retro_hours)):
            h.feed(self._opened(kind, source, key, value) for key, value in chunk)
            await asyncio.sleep(0)
        hits = h.alerts()
        logger.info("retro-hunt: %d entries against %d recent events in %.1f s: %d hits", len(entries), h.events,
                    time.monotonic() - started, len(hits))
        for alert in hits:
            await self.producer.send(topics.KAFKA_ALERTS, schemas.encode(alert), key=alert.alert_id.encode())
        await self.producer.flush()  # before the offsets are committed


def serve(settings: Settings, parent: int) -> None:
    """The hunt process: the retro-hunter until the worker that started it is gone."""
    lower_priority(settings.background_nice)
    logging.basicConfig(level=settings.log_level, format="[%(asctime)s] [%(process)s] [%(levelname)s] %(message)s")

    async def main() -> None:
        hunter = asyncio.create_task(RetroHunter(settings).run())
        while os.getppid() == parent and not hunter.done():
            await asyncio.sleep(1)  # an orphan (the worker was killed) stops
        hunter.cancel()

    asyncio.run(main())


class HuntProcess:
    """Started and watched by the worker: restarted 2 s after it exits, stopped with the app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.proc: multiprocessing.process.BaseProcess | None = None
        self.stopping = False

    async def supervise(self) -> None:
        while not self.stopping:
            self.proc = multiprocessing.get_context("spawn").Process(
                target=serve, args=(self.settings, os.getpid()), name="safecity-retro-hunts", daemon=True)
            self.proc.start()
            while self.proc.is_alive():
                await asyncio.sleep(1)
            if not self.stopping:
                signalled = self.proc.exitcode in (-signal.SIGTERM, -signal.SIGINT)  # as the worker's group is stopped
                logger.log(logging.WARNING if signalled else logging.ERROR,
                           "retro-hunt process exited with %s; starting it again in 2 s", self.proc.exitcode)
                await asyncio.sleep(2)

    def close(self) -> None:
        self.stopping = True
        if self.proc is not None and self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
