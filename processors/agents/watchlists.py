"""Watch lists: the replica every worker holds, live matching with cooldown, retro-hunts."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import faust

from models import schemas, topics
from models.schemas import SchemaError
from models.topics import MessageKind
from models.watchlist import PersonEntry, VehicleEntry, WatchlistMatch
from processors.context import Context
from processors.rules import metrics, retro, watch_alerts
from processors.watchlists import WatchlistReplica, lookback_start, stream_recent

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
            last = self.cooldown_table.get(key)
            suppressed = watch_alerts.in_cooldown(datetime.fromisoformat(last.decode()) if last else None, at,
                                                  self.cooldown)
            if not suppressed:
                self.cooldown_table[key] = at.isoformat().encode()
            self.ctx.sink().add(metrics.watchlist_points(kind, place, m.kind, suppressed, at))
            if not suppressed:
                yield m, subject


def register(ctx: Context) -> Watchlists:
    app, wl, ws = ctx.app, Watchlists(ctx), ctx.settings.watchlist

    @app.task
    async def load_watchlists() -> None:
        await wl.replica.run()

    async def retro_hunt(batch: list, entry_type: type, kind: MessageKind) -> None:
        """New or changed entries are hunted for in the events of the last ``retro_hours``."""
        entries = []
        for raw in batch:
            if raw is None:
                continue  # a deletion
            try:
                entries.append(schemas.decode_as(entry_type, raw))
            except SchemaError as exc:
                logger.error("unreadable watch-list entry (%s); skipped", exc.code)
        if not entries or ws.retro_hours <= 0:
            return
        # streamed in chunks, each matched on a thread: the window is never held in memory, and the
        # event loop (gas alarms, live matching) keeps running meanwhile
        hunt = retro.Hunt(entries, kind)
        async for chunk in stream_recent(ctx.settings.kafka, topics.KAFKA_TOPICS[kind],
                                         lookback_start(ws.retro_hours)):
            await asyncio.to_thread(hunt.feed, [value for _, value in chunk])
        hits = hunt.alerts()
        logger.info("retro-hunt: %d entries against %d recent events: %d hits", len(entries), hunt.events, len(hits))
        await ctx.send_alerts(hits)

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

    @app.agent(ctx.topic(topics.KAFKA_WATCHLIST_VEHICLES), name="watchlist-vehicles")
    async def retro_vehicles(stream: faust.StreamT) -> None:
        async for batch in stream.take(1000, within=2):
            await retro_hunt(batch, VehicleEntry, MessageKind.PLATE_READ)

    @app.agent(ctx.topic(topics.KAFKA_WATCHLIST_PERSONS), name="watchlist-persons")
    async def retro_persons(stream: faust.StreamT) -> None:
        async for batch in stream.take(1000, within=2):
            await retro_hunt(batch, PersonEntry, MessageKind.REGISTRATION)

    return wl
