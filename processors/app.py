"""The one place that builds the Faust app: topics, tables and agents.

Each agent is a thin adapter: decode and validate the Kafka value against models/ (a bad value
becomes a dead letter, never a crash), load the state for the key, call the pure rule, store the
new state, send alerts, hand metric points to the sink. Partition key = device id, so per-device
state lives beside its events and nothing is repartitioned.

At-least-once: Faust commits an offset only after the agent has finished with the event. A replay
recomputes the same transitions from event times; the alert service (``alerting/``) recognises a
replayed transition, so a replay after a crash does not notify twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import faust
from faust.sensors import Monitor

from deploy.kafka_topics import align_topics, ensure_topics, faust_credentials
from models.settings import Settings
from models import topics
from models.topics import MessageKind
from processors import faust_fixes, warm_start
from processors.agents import cameras, checkpoints, core, gas, hotels, watchlists
from processors.changelog import ChangelogBatches, store_with_wal, store_without_wal
from processors.context import CHANGELOG_TOPIC_CONFIG, Context
from processors.rules import metrics
from safecity import collector
from safecity.health import Check, serve_from_settings
from safecity.registry import RegistryFile

logger = logging.getLogger(__name__)

COMMIT_STALL_S = 60.0  # behind and no commit for this long fails the health check
CHANGELOG_FLUSH_S = 0.1  # batched changelog records wait at most about this (and are sent before any commit)


class RecordsUncounted(Monitor):
    """Faust's monitor without its counters per record, stream event and table access (they feed the
    Faust web's ``/stats``, which the worker serves only with ``SAFECITY_WORKER__WEB_PORT``): about 7 %
    of the worker's event loop in py-spy at 3,500 gas readings/s. Commits, sends and rebalances are
    still counted as Faust's monitor counts them, and each partition's last event time is kept: Faust's
    consumer tells from it a stream that stopped moving (without it, Faust logs every partition with
    events not yet committed as a stream that never started). ``SAFECITY_WORKER__RECORD_STATS``: Faust's own."""

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        pass

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        self.stream_inbound_time[tp] = time.monotonic()  # Faust's check that each stream moves reads it
        return None

    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None) -> None:
        pass

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        pass

    def on_table_get(self, table: Any, key: Any) -> None:
        pass

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        pass

    def on_table_del(self, table: Any, key: Any) -> None:
        pass


class SafeCityApp(faust.App):
    """A Faust app that owns its outputs (the metric sink) and closes them on stop, and sends its
    tables' batched changelog records (processors/changelog.py) before every producer flush."""

    outputs: dict[str, Any]
    changelogs: ChangelogBatches
    output_factories: dict[str, Callable[[], Any]]

    def output(self, name: str) -> Any:
        if name not in self.outputs:
            self.outputs[name] = self.output_factories[name]()
        return self.outputs[name]

    async def on_start(self) -> None:
        await super().on_start()
        # Faust flushes its producer right before it commits offsets: hand it the outputs' gathered
        # records first (in memory, cannot fail), so an offset is committed only once the metric
        # points of its events are in Kafka.
        producer_flush = self.producer.flush

        async def flush() -> None:
            self.flush_outputs()
            await self.changelogs.flush()  # batched tables' changelog records (processors/changelog.py)
            await producer_flush()
            self.changelogs.raise_failed()  # a failed batch: no commit

        self.producer.flush = flush  # type: ignore[method-assign]

    def flush_outputs(self) -> None:
        for output in self.outputs.values():
            if hasattr(output, "flush"):  # the metric sink gathers; the image process does not
                output.flush()

    async def on_stop(self) -> None:
        await super().on_stop()
        for name, output in list(self.outputs.items()):
            try:
                output.close()
            except Exception:  # noqa: BLE001 - closing must not stop the other closes
                logger.exception("closing %s failed", name)
        self.outputs.clear()


def _default_outputs(app: faust.App) -> dict[str, Callable[[], Any]]:
    from processors.sinks.metrics_topic import FaustTopicSink

    topic = app.topic(topics.KAFKA_METRICS, key_type=bytes, value_type=bytes, key_serializer="raw",
                      value_serializer="raw")
    return {"metrics": lambda: FaustTopicSink(topic)}


def create_app(settings: Settings, outputs: dict[str, Callable[[], Any]] | None = None) -> SafeCityApp:
    w, k = settings.worker, settings.kafka
    # records thrown away in a rebalance are read again; busy partitions are not held back by a fetch of
    # quiet ones; fewer, fuller fetches; no tasks per record (see the module)
    faust_fixes.apply(w.fetch_max_wait_ms, w.inline_delivery, w.fetch_min_bytes)
    app = SafeCityApp(
        w.app_id,
        broker=[f"kafka://{h.strip()}" for h in k.bootstrap.split(",")],
        store=w.store,  # rocksdb: on disk, so a restart replays only the changelog written since
        datadir=str(w.data_dir),
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=k.partitions,
        topic_replication_factor=k.replication,
        broker_session_timeout=w.session_timeout_s,
        broker_heartbeat_interval=max(1.0, w.session_timeout_s / 5),
        broker_rebalance_timeout=w.rebalance_timeout_s,
        producer_acks=-1,
        producer_linger=w.producer_linger_ms / 1000,  # changelogs and metric points come batched; alerts at once
        producer_max_batch_size=256 * 1024,
        producer_max_request_size=2 * 1024 * 1024,
        consumer_max_fetch_size=w.fetch_partition_bytes,
        consumer_auto_offset_reset="earliest",
        web_enabled=w.web_port is not None,
        web_port=w.web_port or 6066,
        web_host="127.0.0.1",
        broker_credentials=faust_credentials(k),  # SASL / TLS as the other clients
        Monitor=Monitor if w.record_stats else RecordsUncounted,
    )
    if w.store_wal:
        store_with_wal()
    else:
        store_without_wal()  # the changelog is the durable copy (processors/changelog.py)
    app.outputs = {}
    app.changelogs = ChangelogBatches(app)
    app.output_factories = outputs if outputs is not None else _default_outputs(app)

    ctx = Context(app, settings, RegistryFile(settings.registry))
    core.register(ctx)
    gas_agents = gas.register(ctx)
    cams = cameras.register(ctx)
    wl = watchlists.register(ctx)
    checkpoints.register(ctx, wl, cams)
    hotels.register(ctx, wl)

    @app.timer(interval=0.2)
    async def flush_outputs() -> None:  # gathered metric points leave within a fraction of a second
        app.flush_outputs()

    if ctx.batched:
        @app.timer(interval=CHANGELOG_FLUSH_S)
        async def flush_changelogs() -> None:  # and tables' changelog records, in batches
            await app.changelogs.flush()

    if w.full_gc_every_s:
        @app.timer(interval=w.full_gc_every_s)
        async def full_gc() -> None:  # the automatic full collections are deferred to this (run_worker)
            found, took = collector.full_collection()
            logger.info("full garbage collection: %d unreachable objects, %.0f ms", found, took * 1000)

    @app.timer(interval=60.0)
    async def producer_waits() -> None:  # Faust's line per wait, summed (faust_fixes.ProducerWaits)
        waits, largest = faust_fixes.PRODUCER_WAITS.take()
        if waits:
            logger.info("record hand-offs waited %d times in the last minute for the producer's buffer to drain "
                        "(largest %d records)", waits, largest)

    health = serve_from_settings("worker", settings)
    app.outputs["health"] = health  # closed with the app
    seen: dict = {"assigned": None, "committed": {}, "last_commit": 0.0, "lag": None}

    @app.timer(interval=1.0)
    async def health_tick() -> None:  # what the health endpoint reports, refreshed on the loop
        health.beat = now = time.monotonic()
        consumer = app.consumer
        assigned = consumer.assignment()
        committed = {tp: consumer._committed_offset.get(tp) for tp in assigned}  # Faust keeps no public view
        if committed != seen["committed"]:
            seen["committed"], seen["last_commit"] = committed, now
        lag = 0
        for tp in assigned:
            high = consumer.highwater(tp)
            if high is not None:
                lag += max(0, high - (committed[tp] or 0))
        seen["assigned"], seen["lag"] = len(assigned), lag

    def kafka_health() -> Check:
        if seen["assigned"] is None:
            return Check(False, {"state": "starting"})
        age = time.monotonic() - seen["last_commit"]
        return Check(not seen["lag"] or age < COMMIT_STALL_S,
                     {"partitions": seen["assigned"], "lag": seen["lag"], "last_commit_age_s": round(age, 1),
                      "rebalancing": bool(app.rebalancing)})

    health.add("kafka", kafka_health)

    @app.agent(ctx.event_topics[MessageKind.STATUS], name="device-status")
    async def device_status(stream: faust.StreamT) -> None:
        async for raw in stream:
            status = await ctx.decode(MessageKind.STATUS, raw)
            if status is not None:
                entry = ctx.registry.get(status.device_id)
                ctx.sink().add(metrics.status_points(status, entry.kind.value if entry else None,
                                                     entry.lat if entry else None, entry.lon if entry else None))
                await gas_agents.on_status(status)

    return app


def changelog_topics(app: faust.App) -> list[str]:
    """The names of the app's tables' changelog topics."""
    return [t.changelog_topic.get_topic_name() for t in app.tables.values()]


def run_worker(settings: Settings) -> None:
    """Run one worker until SIGINT/SIGTERM (Faust's Worker handles the signals and shutdown)."""
    asyncio.run(ensure_topics(settings.kafka))
    if settings.worker.full_gc_every_s:
        collector.defer_full_collections()  # they held the loop every few seconds (safecity/collector.py)
    app = create_app(settings)
    # Faust sets a changelog's settings only when it creates the topic: those made before a change get it here
    asyncio.run(align_topics(settings.kafka, changelog_topics(app), CHANGELOG_TOPIC_CONFIG))
    if settings.worker.warm_start:  # before joining: partitions taken over wait only for the tail
        read, took = warm_start.before_joining(app, settings.kafka)

        @app.task
        async def warm_start_done() -> None:
            logger.info("warm start: %d changelog records read into the table stores in %.1fs, before joining "
                        "the group", read, took)
    collector.setup_done()  # long-lived from here: no full collection walks it again
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), quiet=True)
    worker.execute_from_commandline()
