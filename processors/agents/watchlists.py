"""Watch lists: the replica every worker holds, live matching with cooldown, retro-hunts."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

import faust

from models import schemas, topics
from models.schemas import Alert
from models.topics import MessageKind
from models.watchlist import WatchlistMatch
from processors.context import Context
from processors.hunting import HuntProcess
from processors.rules import metrics, watch_alerts
from processors.watchlists import WatchlistReplica, follow_forever, lookback_start

logger = logging.getLogger(__name__)


class Watchlists:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.replica = WatchlistReplica(ctx.settings.kafka)
        self.cooldown_table = ctx.table("watch-cooldown")
        self.cooldown = timedelta(seconds=ctx.settings.watchlist.cooldown_s)

    async def hits(self, kind: str, matches: list[WatchlistMatch], subject_of, place: str, at: datetime):
        """The alerting matches that are not repeats within the cooldown (each counted either way)."""
        for m in matches:
            if not m.alert:
                continue
            subject = subject_of(m)
            key = watch_alerts.cooldown_key(m.entry_id, subject, place).encode()
            raw = self.cooldown_table.get(key)
            last = datetime.fromisoformat(raw.decode()) if raw else None
            suppressed = watch_alerts.in_cooldown(last, at, self.cooldown)
            if not suppressed and at != last:
                self.cooldown_table[key] = at.isoformat().encode()
            self.ctx.sink().add(metrics.watchlist_points(kind, place, m.kind, suppressed, at))
            if not suppressed:
                yield m, subject


DECODE_SLICE = 1_000  # entries read and decoded per turn of the event loop (it was 20,000 in one turn)


class RetroHunter:
    """New or changed entries are hunted for in the events of the last ``retro_hours``, merged per
    import: entries are gathered until the list topics are quiet for a second (or ``MAX_ENTRIES``
    wait), then one hunt streams the look-back window once for all of them, in the hunt process.

    It has its own Kafka consumer (group ``<app id>-retro``), outside Faust's: an agent busy with a
    long hunt fills its stream buffer and Faust then stops delivering every topic of the worker, so
    a million-entry import used to stall plate reads (and gas readings) for as long as its thousand
    hunts took. Offsets are committed after the hunt and its alerts are sent (at least once: a hunt
    cut short is run again; its alerts are recognised as replays by the alert service). Entries
    hunted again after a restart find nothing new: events that arrived after an entry was listed
    were matched live and are skipped."""

    MAX_ENTRIES = 200_000

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.kinds = {topics.KAFKA_WATCHLIST_VEHICLES: MessageKind.PLATE_READ,
                      topics.KAFKA_WATCHLIST_PERSONS: MessageKind.REGISTRATION}  # what each list is hunted in
        self.process = HuntProcess()  # matching off the worker's loop and GIL (processors/hunting.py)

    async def run(self) -> None:
        await follow_forever(self._follow, "retro-hunter")

    async def _follow(self) -> None:
        from aiokafka import AIOKafkaConsumer

        s = self.ctx.settings
        consumer = AIOKafkaConsumer(*self.kinds, bootstrap_servers=s.kafka.bootstrap,
                                    group_id=f"{s.worker.app_id}-retro", enable_auto_commit=False,
                                    auto_offset_reset="earliest", max_poll_interval_ms=3_600_000)
        await consumer.start()
        try:
            pending: dict[str, list] = {t: [] for t in self.kinds}
            uncommitted = False
            while True:
                batch = await consumer.getmany(timeout_ms=1000, max_records=DECODE_SLICE)
                uncommitted = uncommitted or bool(batch)
                for tp, records in batch.items():
                    for r in records:
                        if r.value is None:
                            continue  # a deletion
                        pending[tp.topic].append(r.value)  # decoded in the hunt process
                await asyncio.sleep(0)  # a big import is read a slice per turn of the loop
                waiting = sum(map(len, pending.values()))
                if batch and waiting < self.MAX_ENTRIES:
                    continue  # an import is still arriving
                for topic, entries in pending.items():
                    if entries:
                        await self.hunt(entries, self.kinds[topic])
                        entries.clear()
                if uncommitted:
                    await consumer.commit()
                    uncommitted = False
        finally:
            await consumer.stop()

    async def hunt(self, entries: list[bytes], kind: MessageKind) -> None:
        ws = self.ctx.settings.watchlist
        if ws.retro_hours <= 0:
            return
        started = time.monotonic()
        readable, events, encoded = await self.process.hunt(
            self.ctx.settings.kafka, topics.KAFKA_TOPICS[kind], lookback_start(ws.retro_hours), entries, kind.value)
        hits = [schemas.decode_as(Alert, raw) for raw in encoded]
        logger.info("retro-hunt: %d entries against %d recent events in %.1f s: %d hits", readable, events,
                    time.monotonic() - started, len(hits))
        await self.ctx.send_alerts(hits)


def register(ctx: Context) -> Watchlists:
    app, wl, ws = ctx.app, Watchlists(ctx), ctx.settings.watchlist

    @app.task
    async def load_watchlists() -> None:
        await wl.replica.run()

    hunter = RetroHunter(ctx)
    app.outputs["retro-hunts"] = hunter.process  # its process is shut down with the app

    @app.task
    async def retro_hunts() -> None:
        await hunter.run()

    # Cooldown entries expire: a timer finds the ones whose cooldown ended more than cooldown_keep_s
    # ago and sends each to its place's partition, where the agent that owns it drops it.
    sweep_topic = ctx.topic(topics.KAFKA_COOLDOWN_SWEEP)
    keep = timedelta(seconds=ws.cooldown_s + ws.cooldown_keep_s)

    def expired(value: bytes | None) -> bool:
        return value is not None and datetime.fromisoformat(value.decode()) < datetime.now(UTC) - keep

    @app.timer(interval=ws.cooldown_sweep_s)
    async def sweep_cooldowns() -> None:
        for key, value in list(wl.cooldown_table.items()):
            if expired(value):
                await sweep_topic.send(key=watch_alerts.cooldown_place(key.decode()).encode(), value=key)

    @app.agent(sweep_topic, name="watch-cooldown-sweep")
    async def drop_cooldowns(stream: faust.StreamT) -> None:
        async for key in stream:
            if expired(wl.cooldown_table.get(key)):
                del wl.cooldown_table[key]

    return wl
