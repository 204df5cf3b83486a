"""Gas sensors: readings through the gas rules, silence checks, last wills, site correlation.

Silence checks cost nothing per idle sensor: every state this worker saves sets that sensor's
deadline (``gas.silent_at``) in a deadline index, and the check timer takes only the sensors that
are due. The index is rebuilt from the table (one scan) at the first check, after every rebalance
(the partitions this worker owns changed), when the registry changes (intervals may have), and every
``REBUILD_EVERY_S`` as a safety net. A sensor checked by mistake is harmless: the check agent runs
``gas.silence`` on the owner's state, which raises nothing before the deadline.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import faust

from models import schemas, topics
from models.schemas import Alert, DeviceState, DeviceStatus, GasReading
from models.topics import MessageKind
from processors.context import Context
from processors.rules import correlation, gas, metrics
from processors.rules.deadlines import Deadlines

REBUILD_EVERY_S = 600.0
YIELD_EVERY = 32  # readings of a pack between turns of the event loop


class GasAgents:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        g = ctx.settings.gas
        self.base = gas.GasConfig(level1_lel=g.level1_lel, level2_lel=g.level2_lel, hold_readings=g.hold_readings,
                                  clear_s=g.clear_s, interval_s=g.interval_s, offline_intervals=g.offline_intervals)
        self.state = ctx.struct_table("gas-state", gas.GasState, cached=True)  # the gas rules copy their input
        self.sites = ctx.struct_table("gas-site-state", correlation.SiteState)
        self.site_alarms = ctx.topic(topics.KAFKA_SITE_ALARMS)
        self.deadlines = Deadlines()
        self.rebuild_at = 0.0  # monotonic time of the next full rebuild (0: at the next check)
        self.registry_stamp = ctx.registry.stamp()
        self.configs: dict[str, gas.GasConfig] = {}  # per sensor, for the registry version in configs_stamp
        self.shared: dict[tuple, gas.GasConfig] = {}
        self.configs_stamp = self.registry_stamp
        ctx.app.on_rebalance_complete.connect(self._on_rebalance)

    async def _on_rebalance(self, sender, **kwargs) -> None:
        self.rebuild_at = 0.0

    def cfg(self, sensor: str) -> gas.GasConfig:
        """The sensor's thresholds: the defaults with its registry overrides (built once per registry
        version: building them was 3 % of the worker's time per reading)."""
        registry = self.ctx.registry
        entry = registry.get(sensor)  # may re-read the file (a device new to this worker)
        if registry.stamp() != self.configs_stamp:
            self.configs, self.shared, self.configs_stamp = {}, {}, registry.stamp()
        cfg = self.configs.get(sensor)
        if cfg is None:
            if entry is None:
                return self.base
            overrides = (entry.interval_s, tuple(sorted(entry.thresholds.items())))
            cfg = self.shared.get(overrides)  # sensors with the same overrides share one config
            if cfg is None:
                cfg = self.shared[overrides] = self.base.with_overrides(entry.thresholds, entry.interval_s)
            self.configs[sensor] = cfg
        return cfg

    async def apply(self, reading: GasReading) -> None:
        """One reading through the gas rules: its metric points, the new state, the alerts."""
        self.ctx.sink().add(metrics.gas_points(reading))
        cfg = self.cfg(reading.sensor_id)
        state, alerts = gas.step(self.state.get(reading.sensor_id), reading, cfg)
        await self.save(reading.sensor_id, state, alerts, cfg)

    async def save(self, sensor: str, state: gas.GasState, alerts: list[Alert], cfg: gas.GasConfig) -> None:
        """Store the new state (and its silence deadline, under the config the rule just used)."""
        self.state.set(sensor, state)
        self.deadlines.set(sensor, gas.silent_at(state, cfg))
        await self.ctx.send_alerts(alerts)
        for alert in alerts:  # gas alarms go on to their site for correlation
            entry = self.ctx.registry.get(alert.device_id)
            if entry is not None and entry.site and alert.type in correlation.GAS_ALARMS:
                await self.site_alarms.send(key=entry.site.encode(), value=schemas.encode(alert))

    def silent(self, now: datetime) -> list[str]:
        """The sensors due for a silence check now."""
        stamp = self.ctx.registry.stamp()
        if time.monotonic() >= self.rebuild_at or stamp != self.registry_stamp:
            self.registry_stamp, self.rebuild_at = stamp, time.monotonic() + REBUILD_EVERY_S
            self.deadlines.clear()
            for sensor, state in self.state.items():
                self.deadlines.set(sensor, gas.silent_at(state, self.cfg(sensor)))
        return self.deadlines.due(now)

    async def on_status(self, status: DeviceStatus) -> None:
        """A known gas sensor's last will means offline now."""
        if status.device_id in self.state:
            at = status.at or status.ingested_at or datetime.now(UTC)
            online = status.state is DeviceState.ONLINE
            cfg = self.cfg(status.device_id)
            state, alerts = gas.status(self.state.get(status.device_id), status.device_id, online, at, cfg)
            await self.save(status.device_id, state, alerts, cfg)


def register(ctx: Context) -> GasAgents:
    app, ga = ctx.app, GasAgents(ctx)
    checks = ctx.periodic_check(topics.KAFKA_GAS_TICKS, ctx.settings.gas.check_every_s, ga.silent)

    @app.agent(ctx.event_topics[MessageKind.GAS_READING], name="gas-readings")
    async def gas_readings(stream: faust.StreamT) -> None:
        async for raw in stream:  # one reading, or a pack of one partition's readings (ingest/bridge.py)
            for n, reading in enumerate(await ctx.decode_record(MessageKind.GAS_READING, raw), start=1):
                if n % YIELD_EVERY == 0:  # a long pack holds neither urgent readings nor plate reads back
                    await asyncio.sleep(0)
                await ga.apply(reading)

    urgent = topics.KAFKA_URGENT[MessageKind.GAS_READING]

    @app.agent(ctx.topic(urgent), name="gas-urgent-readings")
    async def gas_urgent_readings(stream: faust.StreamT) -> None:
        """Readings at alarming levels (ingest's ``Urgency``), on their own topic: the same rules and
        table (the topics are co-partitioned), never behind the routine readings' backlog."""
        async for raw in stream:
            for reading in await ctx.decode_record(MessageKind.GAS_READING, raw, urgent):
                await ga.apply(reading)

    @app.agent(checks, name="gas-silence")
    async def gas_silence(stream: faust.StreamT) -> None:
        async for key, raw in stream.items():
            sensor, cfg = key.decode(), ga.cfg(key.decode())
            state, alerts = gas.silence(ga.state.get(sensor), sensor, datetime.fromisoformat(raw.decode()), cfg)
            await ga.save(sensor, state, alerts, cfg)

    @app.agent(ga.site_alarms, name="gas-sites")
    async def gas_sites(stream: faust.StreamT) -> None:
        async for key, raw in stream.items():
            alert = await ctx.decode(Alert, raw, topics.KAFKA_SITE_ALARMS)
            if alert is None:
                continue
            site = key.decode()
            state, alerts = correlation.site_step(ga.sites.get(site), site, alert, ctx.settings.gas.site_window_s)
            ga.sites.set(site, state)
            await ctx.send_alerts(alerts)

    return ga
