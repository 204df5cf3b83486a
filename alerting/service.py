"""`safecity alerter`: the alert service, one process.

::

    safecity.alerts.v1 ──▶ owner (lifecycle + router, one thread) ──▶ store: records, router state, outbox
    HTTP API (actions) ──┘                                              │
                              dispatcher ◀── outbox (due rows) ─────────┤  webhook, e-mail, robots, MQTT
                              MQTT state ◀── unpublished record versions┤  safecity/v1/alerts/<type>/<device>/<id>
                              metrics    ◀── open alerts, KPIs ─────────┘  safecity.metrics.v1 (-> InfluxDB)

Kafka offsets are committed only after the store has the transaction, so a crash replays
transitions, which the lifecycle recognises; notifications are rows in the outbox, written with the
decision that caused them, so a replay or a restart never creates a second one. Each delivery runs
as its own task (a slow receiver delays nothing else) with retries and backoff; after the last, a
dead letter and a metric.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from alerting import mqtt_state
from alerting.audit import AuditTrail
from alerting.channels import DeliveryError, Sender
from alerting.lifecycle import CLOSING_CHANGES, AlertRecord, Change, IllegalStep, Outcome
from alerting.owner import Owner
from alerting.policy import Policy, load_policy
from alerting.store import AlertStore, OutboxRow, default_url
from deploy.kafka_topics import client_args, ensure_topics
from deploy.keys import audit_key, sealer
from models import schemas, topics
from models.schemas import Alert, SchemaError
from models.settings import Settings
from processors.rules import metrics
from processors.rules.metrics import MetricPoint
from processors.sinks.metrics_topic import ProducerSink
from safecity.health import Check, Health
from safecity.registry import RegistryFile

logger = logging.getLogger(__name__)
STAGE = "alerter"


def store_url(settings: Settings) -> str:
    a = settings.alerts
    return a.db_url.get_secret_value() if a.db_url else default_url(settings.services.run_dir)


def kpi_points(record: AlertRecord, change: Change, target_s: float) -> list[MetricPoint]:
    """Transition counts, and on closing the time to acknowledge and to close and whether the alert
    was handled (acknowledged or closed) within the target time."""
    tags = {"type": record.type, "severity": record.severity.value, "district": record.place.district or "none"}
    points = []
    if change is Change.OPENED or change in CLOSING_CHANGES:
        state = "firing" if change is Change.OPENED else "cleared"
        place = metrics.place_tags(record.place)
        points += metrics.with_place(metrics.alert_points(Alert(
            alert_id=record.alert_id, type=record.type, severity=record.severity, state=schemas.AlertState(state),
            device_id=record.device_id, since=record.since, at=record.closed_at or record.first_seen, summary="")),
            lambda _: place)
    if change in CLOSING_CHANGES and record.closed_at is not None:
        handled_at = min(filter(None, (record.acknowledged_at, record.closed_at)))
        fields: dict = {"count": 1, "time_to_close_s": (record.closed_at - record.first_seen).total_seconds(),
                        "handled_in_time": int((handled_at - record.first_seen).total_seconds() <= target_s)}
        if record.acknowledged_at is not None:
            fields["time_to_ack_s"] = (record.acknowledged_at - record.first_seen).total_seconds()
        points.append(MetricPoint("alerts_closed", tags | {"outcome": record.status.value}, fields, record.closed_at))
    if change in (Change.CONFIRMED, Change.REJECTED):
        points += metrics.feedback_points(record.type, str(record.details.get("match", "")), change.value,
                                          record.closed_at or record.last_seen)
    return points


class AlertService:
    def __init__(self, settings: Settings, policy: Policy | None = None, sink: Any = None) -> None:
        self.settings = settings
        self.policy = policy if policy is not None else (
            load_policy(settings.alerts.policy) if settings.alerts.policy else Policy())
        self.store = AlertStore(store_url(settings))
        self.db = ThreadPoolExecutor(1, thread_name_prefix="alert-owner")  # the one owner thread
        self.owner: Owner | None = None
        self.sink = sink
        self.wake_timer = asyncio.Event()
        self.wake_dispatch = asyncio.Event()
        self.to_publish: asyncio.Queue[AlertRecord] = asyncio.Queue()
        self.inflight: set[int] = set()
        self.tasks: set[asyncio.Task] = set()
        self.producer: AIOKafkaProducer | None = None
        self.audit: AuditTrail | None = None
        self.mqtt: mqtt_state.AlertStatePublisher | None = None
        self.sender: Sender | None = None
        self.stopping = asyncio.Event()
        self.last_poll = 0.0  # monotonic time the alerts topic was last polled
        self.health = Health("alerter")
        self.health.add("mqtt", lambda: Check(self.mqtt is not None and self.mqtt.connected.is_set()))
        self.health.add("kafka", self._kafka_health)

    def _kafka_health(self) -> Check:
        age = time.monotonic() - self.last_poll if self.last_poll else None
        return Check(age is not None and age < 15, {"last_poll_age_s": None if age is None else round(age, 1)})

    async def call(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.db, fn, *args)

    # ------------------------------------------------------------------ lifecycle of the service
    async def start(self) -> None:
        s = self.settings
        await self.call(self.store.migrate)
        self.owner = await self.call(Owner, self.store, self.policy, RegistryFile(s.registry))
        await ensure_topics(s.kafka)
        self.producer = AIOKafkaProducer(**client_args(s.kafka), acks="all", enable_idempotence=True)
        await self.producer.start()
        self.audit = AuditTrail(s, self.producer, audit_key(s))  # the trail's one writer
        self.sealer = sealer(s)  # opens a guest's registration for a supervisor (open_subject), audited
        self.mqtt = mqtt_state.AlertStatePublisher(s.mqtt)
        self.sender = Sender(s.alerts, self.mqtt.publish)
        if self.sink is None:  # metrics go through Kafka to the metrics writer: InfluxDB never holds us up
            self.sink = ProducerSink(self.producer, topics.KAFKA_METRICS)

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.sender:
            await self.sender.close()
        if self.producer:
            await self.producer.stop()
        if self.mqtt:
            self.mqtt.close()
        if self.sink is not None:
            try:
                self.sink.close()
            except Exception:  # noqa: BLE001 - metrics must not block shutdown
                logger.exception("closing the metric sink failed")
        self.db.shutdown(wait=True)
        self.store.close()

    def spawn(self, coro) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def supervise(self, loop_fn) -> None:
        """Keep one of the service's loops running: an error (Kafka away, the store briefly
        unreachable) is logged and the loop restarted, never left dead in the background."""
        while True:
            try:
                await loop_fn()
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - restart whatever it was
                logger.exception("%s failed; restarting it in 2 s", loop_fn.__name__)
                await asyncio.sleep(2)

    async def run(self) -> None:
        from alerting.api import serve_api

        await self.start()
        runner = await serve_api(self)
        if self.settings.health.port is not None:
            self.health.serve(self.settings.health.host, self.settings.health.port)
        self.spawn(self.health.heartbeat())
        for loop_fn in (self.consume, self.timers, self.dispatch, self.publish_states, self.snapshots,
                        self.chain_requests):
            self.spawn(self.supervise(loop_fn))
        logger.info("alert service ready: API on %s:%s, store %s", self.settings.alerts.api_host,
                    self.settings.alerts.api_port, self.store.engine.url.render_as_string(hide_password=True))
        try:
            await self.stopping.wait()
        finally:
            await runner.cleanup()
            self.health.close()
            await self.stop()

    # ------------------------------------------------------------------ inputs
    async def consume(self) -> None:
        s = self.settings
        consumer = AIOKafkaConsumer(topics.KAFKA_ALERTS, **client_args(s.kafka),
                                    group_id=s.alerts.group_id, enable_auto_commit=False,
                                    auto_offset_reset="earliest", isolation_level="read_committed")
        await consumer.start()
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=200)
                self.last_poll = time.monotonic()
                for records in batch.values():
                    for rec in records:
                        await self.on_kafka(rec.value or b"")
                if batch:
                    await consumer.commit()  # after the store has every transaction of the batch
        finally:
            await consumer.stop()

    async def on_kafka(self, raw: bytes) -> None:
        try:
            alert = schemas.decode_as(Alert, raw)
        except SchemaError as exc:
            await self.dead_letter(exc.code, str(exc), topics.KAFKA_ALERTS, raw)
            return
        self.changed(await self.call(self.owner.on_alert, alert, datetime.now(UTC)))

    def changed(self, outcome: Outcome) -> None:
        if outcome.change is not None and outcome.record is not None:
            self.metric(kpi_points(outcome.record, outcome.change, self.settings.alerts.handled_target_s))
            self.to_publish.put_nowait(outcome.record)
        self.wake_timer.set()
        self.wake_dispatch.set()

    def metric(self, points: list[MetricPoint]) -> None:
        if points and self.sink is not None:
            self.sink.add(points)

    async def dead_letter(self, code: str, reason: str, source: str, raw: bytes) -> None:
        dl = schemas.dead_letter(STAGE, code, reason, source, raw, datetime.now(UTC))
        await self.producer.send_and_wait(topics.KAFKA_DEAD_LETTERS, schemas.encode(dl), key=source.encode())
        logger.warning("dead letter %s from %s", code, source)

    # ------------------------------------------------------------------ timers
    async def timers(self) -> None:
        while True:
            now = datetime.now(UTC)
            if await self.call(self.owner.tick, now):
                self.wake_dispatch.set()
            due = await self.call(self.owner.next_due)
            wait = 5.0 if due is None else max(0.0, min(5.0, (due - datetime.now(UTC)).total_seconds()))
            self.wake_timer.clear()
            try:
                await asyncio.wait_for(self.wake_timer.wait(), wait + 0.01)
            except asyncio.TimeoutError:
                pass

    # ------------------------------------------------------------------ deliveries
    async def dispatch(self) -> None:
        while True:
            now = datetime.now(UTC)
            rows = await self.call(self.store.due_deliveries, now, 100, set(self.inflight))
            for row in rows:  # rows already in flight were left out by the query
                self.inflight.add(row.id)
                self.spawn(self.deliver(row))
            nxt = await self.call(self.store.next_delivery_due)
            wait = 2.0 if nxt is None else max(0.05, min(2.0, (nxt - datetime.now(UTC)).total_seconds()))
            self.wake_dispatch.clear()
            try:
                await asyncio.wait_for(self.wake_dispatch.wait(), wait)
            except asyncio.TimeoutError:
                pass

    async def deliver(self, row: OutboxRow) -> None:
        a = self.settings.alerts
        tags = {"channel": row.channel, "receiver": row.receiver, "reason": row.reason}
        try:
            secret = self.owner.secret(row.receiver, row.channel, row.target)
            await self.sender.send(row.channel, row.target, secret, row.payload)
            await self.call(self.store.delivered, row.id, datetime.now(UTC))
            self.metric([MetricPoint("notifications", tags | {"result": "sent"}, {"count": 1}, datetime.now(UTC))])
        except DeliveryError as exc:
            final = row.attempts + 1 > a.retries
            delay = min(a.retry_max_s, a.retry_base_s * 2 ** row.attempts)
            await self.call(self.store.retry, row.id, datetime.now(UTC) + timedelta(seconds=delay), str(exc), final)
            result = "failed" if final else "retry"
            self.metric([MetricPoint("notifications", tags | {"result": result}, {"count": 1}, datetime.now(UTC))])
            logger.warning("delivery %s to %s via %s: %s (%s)", row.id, row.receiver, row.channel, exc, result)
            if final:
                await self.dead_letter("notification-failed", f"{row.channel} to {row.receiver}: {exc}"[:400],
                                       f"notify/{row.receiver}/{row.channel}",
                                       schemas.encode(row.payload))
        finally:
            self.inflight.discard(row.id)
            self.wake_dispatch.set()

    # ------------------------------------------------------------------ MQTT state, metrics
    async def publish_states(self) -> None:
        """Every version of every record, in order (a transition that fired and cleared within
        moments shows both); after a restart, first the current version of whatever the broker may
        have missed."""
        for record in await self.call(self.store.unpublished, 100_000):
            await self.publish_state(record)
        while True:
            await self.publish_state(await self.to_publish.get())

    async def publish_state(self, record: AlertRecord) -> None:
        delay = 0.5
        while True:
            try:
                await self.mqtt.publish_state(record)
                break
            except (ConnectionError, TimeoutError) as exc:
                logger.warning("MQTT state of %s not published yet (%s); retrying", record.alert_id, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        await self.call(self.store.mark_published, record)

    async def snapshots(self) -> None:
        """Open alerts by severity, type and district, every few seconds: "firing now" is right on any
        time range."""
        previous: set[tuple[str, str, str]] = set()
        while True:
            now = datetime.now(UTC)
            counts = await self.call(self.store.open_counts)
            current = {(sev, typ, district or "none"): n for sev, typ, district, n in counts}
            current |= {key: 0 for key in previous - current.keys()}  # a group that emptied reads 0
            previous = {k for k, n in current.items() if n}
            points = [MetricPoint("alerts_open", {"severity": sev, "type": typ, "district": district},
                                  {"count": n}, now) for (sev, typ, district), n in current.items()]
            points.append(MetricPoint("alerts_open_total", {}, {"count": sum(c[3] for c in counts)}, now))
            self.metric(points)
            await asyncio.sleep(self.settings.alerts.snapshot_every_s)

    async def chain_requests(self) -> None:
        await self.audit.consume_requests(self.dead_letter)

    async def open_subject(self, alert_id: str, by: str, reason: str) -> dict | None:
        """A person lead's registration, for a supervisor, audited first (None: no longer on Kafka)."""
        from alerting.evidence import find_registration

        episodes = await self.call(self.store.episodes, alert_id)
        if not episodes:
            raise IllegalStep(f"no alert {alert_id!r}")
        lead = episodes[-1]
        registration_id = lead.details.get("registration_id")
        if lead.type not in ("watchlist-person", "watchlist-retro-hit") or not registration_id:
            raise NotAPersonLead(f"{alert_id} is not a lead about a hotel guest")
        # audited before anything is opened: who looked, at which lead, and why
        await self.audit.append(schemas.AuditRecord(action="alert-open-subject", by=by, at=datetime.now(UTC),
                                                    target=alert_id, detail=reason[:500]))
        seen = lead.details.get("seen_at")
        seen_at = datetime.fromisoformat(seen) if isinstance(seen, str) else lead.first_seen
        reg = await find_registration(self.settings.kafka, self.sealer, lead.device_id, str(registration_id),
                                      seen_at)
        if reg is None:
            return None
        return {"registration_id": reg.registration_id, "hotel_id": reg.hotel_id, "guest_name": reg.guest_name,
                "id_type": reg.id_type.value, "id_number": reg.id_number, "nationality": reg.nationality,
                "birth_date": reg.birth_date.isoformat() if reg.birth_date else None, "room": reg.room,
                "checkin_at": reg.checkin_at.isoformat()}

    # ------------------------------------------------------------------ operator actions (from the API)
    async def act(self, action) -> AlertRecord:
        """Check, audit, apply. Raises IllegalStep (nothing audited, nothing changed)."""
        now = datetime.now(UTC)
        await self.call(lambda: self.owner.on_action(action, now, dry_run=True))
        audit = schemas.AuditRecord(action=f"alert-{action.action.value}", by=action.by, at=action.at,
                                    target=action.alert_id, detail=(action.assignee or action.reason)[:500])
        await self.audit.append(audit)  # in the trail before anything changes
        outcome = await self.call(self.owner.on_action, action, now)
        self.changed(outcome)
        return outcome.record


class NotAPersonLead(LookupError):
    pass


def run(settings: Settings) -> None:
    async def main() -> None:
        service = AlertService(settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, service.stopping.set)
        await service.run()

    asyncio.run(main())
