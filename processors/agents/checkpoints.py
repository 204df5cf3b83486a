"""Checkpoint plate reads: metrics, plate data quality, watch-list hits, the snapshot's health."""

from __future__ import annotations

import faust

from models.topics import MessageKind
from processors.agents.cameras import CameraAgents
from processors.agents.watchlists import Watchlists
from processors.context import Context
from processors.rules import metrics, plates, watch_alerts


def register(ctx: Context, wl: Watchlists, cams: CameraAgents) -> None:
    @ctx.app.agent(ctx.event_topics[MessageKind.PLATE_READ], name="plate-reads")
    async def plate_reads(stream: faust.StreamT) -> None:
        async for raw in stream:
            read = await ctx.decode(MessageKind.PLATE_READ, raw)
            if read is None:
                continue
            ctx.sink().add(metrics.plate_read_points(read))
            if not plates.check_plate(read.plate).valid:
                ctx.sink().add(metrics.data_quality_points("checkpoint_id", read.checkpoint_id, "invalid-plate",
                                                           read.captured_at))
            await wl.replica.ready.wait()
            vehicles = wl.replica.vehicles
            matches = vehicles.match(read.plate, read.captured_at)
            async for m, listed, sid in wl.hits("vehicles", matches, lambda m: vehicles.entries[m.entry_id].plate,
                                                read.checkpoint_id, read.captured_at):
                await ctx.send_alerts([watch_alerts.vehicle_alert(read, m, listed, sid)])
            if read.snapshot_jpeg is not None:  # every plate read's snapshot is a look at its camera
                await cams.snapshot(read)
