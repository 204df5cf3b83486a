"""Watch lists: the replica every worker holds, live matching with cooldown, retro-hunts."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import faust

from deploy.keys import pseudonyms
from models import topics
from models.watchlist import WatchlistMatch
from processors.context import Context
from processors.hunting import HuntProcess
from processors.rules import metrics, watch_alerts
from processors.watchlists import WatchlistReplica

logger = logging.getLogger(__name__)


class Watchlists:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.replica = WatchlistReplica(ctx.settings.kafka)
        self.cooldown_table = ctx.table("watch-cooldown")
        self.cooldown = timedelta(seconds=ctx.settings.watchlist.cooldown_s)
        self.pseudonyms = pseudonyms(ctx.settings)

    async def hits(self, kind: str, matches: list[WatchlistMatch], subject_of, place: str, at: datetime):
        """The alerting matches that are not repeats within the cooldown (each counted either way), each
        with its subject and the subject's pseudonym."""
        for m in matches:
            if not m.alert:
                continue
            subject = subject_of(m)
            sid = self.pseudonyms.of(subject)
            key = watch_alerts.cooldown_key(m.entry_id, sid, place).encode()
            raw = self.cooldown_table.get(key)
            last = datetime.fromisoformat(raw.decode()) if raw else None
            suppressed = watch_alerts.in_cooldown(last, at, self.cooldown)
            if not suppressed and at != last:
                self.cooldown_table[key] = at.isoformat().encode()
            self.ctx.sink().add(metrics.watchlist_points(kind, place, m.kind, suppressed, at))
            if not suppressed:
                yield m, subject, sid


def register(ctx: Context) -> Watchlists:
    app, wl, ws = ctx.app, Watchlists(ctx), ctx.settings.watchlist

    @app.task
    async def load_watchlists() -> None:
        await wl.replica.run()

    hunts = HuntProcess(ctx.settings)  # retro-hunts: a process of their own (processors/hunting.py)
    app.outputs["retro-hunts"] = hunts  # stopped with the app

    @app.task
    async def retro_hunts() -> None:
        await hunts.supervise()

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
