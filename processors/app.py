"""The one place that builds the Faust app: topics, tables and agents.

Each agent is a thin adapter: decode and validate the Kafka value against models/ (a bad value
becomes a dead letter, never a crash), load the state for the key, call the pure rule, store the
new state, send alerts, hand metric points to the sink. Partition key = device id, so per-device
state lives beside its events and nothing is repartitioned.

At-least-once: Faust commits an offset only after the agent has finished with the event. A replay
recomputes the same transitions from event times; the alert agent notifies each transition once
(``rules.notify``), so a replay after a crash does not notify twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
import msgspec

from deploy.kafka_topics import ensure_topics
from models import schemas, topics
from models.schemas import Alert, DeviceState, SchemaError
from models.settings import Settings
from models.topics import MessageKind
from models.schemas import AlertState, IdType
from models.watchlist import PersonEntry, VehicleEntry
from processors.rules import camera, compliance, correlation, gas, metrics, notify, plates, retro, watch_alerts
from processors.rules.idnumber import check_id
from processors.watchlists import WatchlistReplica, lookback_start, scan_recent
from processors.rules import image as image_rules
from processors.rules.motion import MotionTracker
from processors.sinks import MetricSink
from safecity.registry import RegistryFile

logger = logging.getLogger(__name__)
STAGE = "processor"


class SafeCityApp(faust.App):
    """A Faust app that owns its outputs (metric sink, alert publisher) and closes them on stop."""

    outputs: dict[str, Any]
    output_factories: dict[str, Callable[[], Any]]

    def output(self, name: str) -> Any:
        if name not in self.outputs:
            self.outputs[name] = self.output_factories[name]()
        return self.outputs[name]

    async def on_stop(self) -> None:
        await super().on_stop()
        for name, output in list(self.outputs.items()):
            try:
                output.close()
            except Exception:  # noqa: BLE001 - closing must not stop the other closes
                logger.exception("closing %s failed", name)
        self.outputs.clear()


def _default_outputs(settings: Settings) -> dict[str, Callable[[], Any]]:
    from processors.sinks.influx import InfluxSink
    from processors.sinks.mqtt_alerts import MqttAlertPublisher

    return {"metrics": lambda: InfluxSink(settings.influx), "alerts": lambda: MqttAlertPublisher(settings)}


def create_app(settings: Settings, outputs: dict[str, Callable[[], Any]] | None = None) -> SafeCityApp:
    w, k = settings.worker, settings.kafka
    app = SafeCityApp(
        w.app_id,
        broker=[f"kafka://{h.strip()}" for h in k.bootstrap.split(",")],
        store="memory://",  # tables are rebuilt from their compacted changelog topics on start
        datadir=str(w.data_dir),
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=k.partitions,
        topic_replication_factor=k.replication,
        broker_session_timeout=w.session_timeout_s,
        broker_heartbeat_interval=max(1.0, w.session_timeout_s / 5),
        broker_rebalance_timeout=w.rebalance_timeout_s,
        producer_acks=-1,
        producer_max_request_size=2 * 1024 * 1024,
        consumer_max_fetch_size=4 * 1024 * 1024,
        consumer_auto_offset_reset="earliest",
        web_enabled=w.web_port is not None,
        web_port=w.web_port or 6066,
        web_host="127.0.0.1",
    )
    app.outputs = {}
    app.output_factories = outputs if outputs is not None else _default_outputs(settings)

    def topic(name: str) -> faust.TopicT:
        return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    event_topics = {kind: topic(name) for kind, name in topics.KAFKA_TOPICS.items()}
    alerts_topic = topic(topics.KAFKA_ALERTS)
    dead_letter_topic = topic(topics.KAFKA_DEAD_LETTERS)

    gas_state = app.Table("gas-state", key_type=bytes, value_type=bytes, partitions=k.partitions)
    site_state = app.Table("gas-site-state", key_type=bytes, value_type=bytes, partitions=k.partitions)
    notified = app.Table("alerts-notified", key_type=bytes, value_type=bytes, partitions=k.partitions)
    watch_cooldown = app.Table("watch-cooldown", key_type=bytes, value_type=bytes, partitions=k.partitions)
    alert_last = app.Table("alert-last", key_type=bytes, value_type=bytes, partitions=k.partitions)
    hotel_state = app.Table("hotel-state", key_type=bytes, value_type=bytes, partitions=k.partitions)
    hotel_ticks = topic(topics.KAFKA_HOTEL_TICKS)
    late_cooldown = app.Table("late-upload-cooldown", key_type=bytes, value_type=bytes, partitions=k.partitions)
    wl_vehicles_topic = topic(topics.KAFKA_WATCHLIST_VEHICLES)
    wl_persons_topic = topic(topics.KAFKA_WATCHLIST_PERSONS)
    feedback_topic = topic(topics.KAFKA_FEEDBACK)
    replica = WatchlistReplica(k)
    ws = settings.watchlist
    cooldown = timedelta(seconds=ws.cooldown_s)

    @app.task
    async def load_watchlists() -> None:
        await replica.run()

    async def cooled(key: str, at: datetime) -> bool:
        """True when this hit falls in the cooldown of an earlier one (and is suppressed)."""
        last = watch_cooldown.get(key.encode())
        if watch_alerts.in_cooldown(datetime.fromisoformat(last.decode()) if last else None, at, cooldown):
            return True
        watch_cooldown[key.encode()] = at.isoformat().encode()
        return False

    camera_state = app.Table("camera-state", key_type=bytes, value_type=bytes, partitions=k.partitions)
    trackers: dict[str, MotionTracker] = {}  # motion backgrounds live in memory, relearnt after a restart
    motion_topic = topic(topics.KAFKA_MOTION)
    camera_cfg = camera.CameraConfig(bad_frames=settings.camera.bad_frames, good_frames=settings.camera.good_frames,
                                     frozen_s=settings.camera.frozen_s)
    gas_ticks = topic(topics.KAFKA_GAS_TICKS)
    site_alarms = topic(topics.KAFKA_SITE_ALARMS)
    registry = RegistryFile(settings.registry)
    g = settings.gas
    base_cfg = gas.GasConfig(level1_lel=g.level1_lel, level2_lel=g.level2_lel, hold_readings=g.hold_readings,
                             clear_s=g.clear_s, interval_s=g.interval_s, offline_intervals=g.offline_intervals)

    def gas_cfg(sensor: str) -> gas.GasConfig:
        entry = registry.get(sensor)
        return base_cfg.with_overrides(entry.thresholds, entry.interval_s) if entry else base_cfg

    def load_gas(sensor: bytes) -> gas.GasState:
        stored = gas_state.get(sensor)
        return msgspec.json.decode(stored, type=gas.GasState) if stored else gas.GasState()

    async def save_gas(sensor: bytes, before: gas.GasState, after: gas.GasState, alerts: list[Alert]) -> None:
        if after is not before:
            gas_state[sensor] = msgspec.json.encode(after)
        await send_alerts(alerts)
        for alert in alerts:  # gas alarms go on to their site for correlation
            entry = registry.get(alert.device_id)
            if entry is not None and entry.site and alert.type in correlation.GAS_ALARMS:
                await site_alarms.send(key=entry.site.encode(), value=schemas.encode(alert))

    def sink() -> MetricSink:
        return app.output("metrics")

    async def decode(kind: MessageKind | type, raw: bytes, source: str) -> Any | None:
        try:
            if isinstance(kind, MessageKind):
                return schemas.decode_event(kind, raw)
            return schemas.decode_as(kind, raw)
        except SchemaError as exc:
            dl = schemas.dead_letter(STAGE, exc.code, str(exc), source, raw or b"", datetime.now(UTC))
            await dead_letter_topic.send(key=source.encode(), value=schemas.encode(dl))
            logger.warning("dead letter %s from Kafka topic %s", exc.code, source)
            return None

    async def send_alerts(alerts: list[Alert]) -> None:
        for alert in alerts:
            await alerts_topic.send(key=alert.alert_id.encode(), value=schemas.encode(alert))

    @app.agent(event_topics[MessageKind.GAS_READING], name="gas-readings")
    async def gas_readings(stream: faust.StreamT) -> None:
        async for raw in stream:
            reading = await decode(MessageKind.GAS_READING, raw, topics.KAFKA_TOPICS[MessageKind.GAS_READING])
            if reading is None:
                continue
            sink().add(metrics.gas_points(reading))
            key = reading.sensor_id.encode()
            state = load_gas(key)
            new_state, alerts = gas.step(state, reading, gas_cfg(reading.sensor_id))
            await save_gas(key, state, new_state, alerts)

    @app.timer(interval=g.check_every_s)
    async def find_silent_sensors() -> None:
        """Read-only scan of this worker's sensors; a silent one gets a check event on its own
        partition (tables may only change inside a stream)."""
        now = datetime.now(UTC)
        for key, stored in list(gas_state.items()):
            state = msgspec.json.decode(stored, type=gas.GasState)
            if gas.silence(state, key.decode(), now, gas_cfg(key.decode()))[1]:
                await gas_ticks.send(key=key, value=now.isoformat().encode())

    @app.agent(gas_ticks, name="gas-silence")
    async def gas_silence(stream: faust.StreamT) -> None:
        async for key, raw in stream.items():
            now = datetime.fromisoformat(raw.decode())
            state = load_gas(key)
            new_state, alerts = gas.silence(state, key.decode(), now, gas_cfg(key.decode()))
            await save_gas(key, state, new_state, alerts)

    @app.agent(site_alarms, name="gas-sites")
    async def gas_sites(stream: faust.StreamT) -> None:
        async for key, raw in stream.items():
            alert = await decode(Alert, raw, topics.KAFKA_SITE_ALARMS)
            if alert is None:
                continue
            stored = site_state.get(key)
            state = msgspec.json.decode(stored, type=correlation.SiteState) if stored else correlation.SiteState()
            new_state, alerts = correlation.site_step(state, key.decode(), alert, g.site_window_s)
            site_state[key] = msgspec.json.encode(new_state)
            await send_alerts(alerts)

    @app.agent(event_topics[MessageKind.PLATE_READ], name="plate-reads")
    async def plate_reads(stream: faust.StreamT) -> None:
        async for raw in stream:
            read = await decode(MessageKind.PLATE_READ, raw, topics.KAFKA_TOPICS[MessageKind.PLATE_READ])
            if read is None:
                continue
            sink().add(metrics.plate_read_points(read))
            checked = plates.check_plate(read.plate)
            if not checked.valid:
                sink().add(metrics.data_quality_points("checkpoint_id", read.checkpoint_id, "invalid-plate",
                                                       read.captured_at))
            await replica.ready.wait()
            for m in replica.vehicles.match(read.plate, read.captured_at):
                if not m.alert:
                    continue
                listed = replica.vehicles.entries[m.entry_id].plate
                suppressed = await cooled(watch_alerts.cooldown_key(m.entry_id, listed, read.checkpoint_id),
                                          read.captured_at)
                sink().add(metrics.watchlist_points("vehicles", read.checkpoint_id, m.kind, suppressed,
                                                    read.captured_at))
                if not suppressed:
                    await send_alerts([watch_alerts.vehicle_alert(read, m, listed)])
            if read.snapshot_jpeg is not None:  # every plate read's snapshot is a look at its camera
                await analyse_image(read.camera_id, read.checkpoint_id, read.snapshot_jpeg, read.captured_at,
                                    topics.KAFKA_TOPICS[MessageKind.PLATE_READ])

    async def analyse_image(camera_id: str, device_id: str, data: bytes, at: datetime, source: str,
                            motion: bool = False) -> None:
        try:  # analytics work at ~640 px: large JPEGs are decoded reduced, in the DCT
            frame = image_rules.decode_image(data, min_side=image_rules.WORK_WIDTH)
            scale = image_rules.image_header(data)[1] / frame.shape[1]
        except image_rules.ImageError as exc:
            dl = schemas.dead_letter(STAGE, exc.code, f"camera {camera_id}: {exc}", source, data, datetime.now(UTC))
            await dead_letter_topic.send(key=source.encode(), value=schemas.encode(dl))
            logger.warning("dead letter %s: image from camera %s", exc.code, camera_id)
            return
        key = camera_id.encode()
        stored = camera_state.get(key)
        state = msgspec.json.decode(stored, type=camera.CameraState) if stored else camera.CameraState()
        new_state, alerts, health = camera.observe(state, camera_id, frame, at, camera_cfg)
        camera_state[key] = msgspec.json.encode(new_state)
        entry = registry.get(camera_id) or registry.get(device_id)
        sink().add(metrics.camera_points(camera_id, entry.district if entry else None, health.scores,
                                         health.problems, at))
        await send_alerts(alerts)
        if motion:
            tracker = trackers.setdefault(camera_id, MotionTracker())
            _, events = tracker.update(frame, at)
            for ev in events:
                boxes = [tuple(round(v * scale) for v in b) for b in ev.boxes]  # in the camera's pixels
                event = schemas.MotionEvent(camera_id=camera_id, state=ev.state, at=ev.at, boxes=boxes,
                                            area=round(ev.area, 4))
                await motion_topic.send(key=key, value=schemas.encode(event))
                sink().add(metrics.motion_points(event))

    @app.agent(event_topics[MessageKind.FRAME], name="camera-frames")
    async def camera_frames(stream: faust.StreamT) -> None:
        async for raw in stream:
            frame = await decode(MessageKind.FRAME, raw, topics.KAFKA_TOPICS[MessageKind.FRAME])
            if frame is not None:
                await analyse_image(frame.camera_id, frame.camera_id, frame.image, frame.captured_at,
                                    topics.KAFKA_TOPICS[MessageKind.FRAME], motion=settings.camera.motion)

    async def late(hotel: str, at: datetime) -> bool:
        """At most one late-upload alert per hotel per hour."""
        last = late_cooldown.get(hotel.encode())
        if last and at - datetime.fromisoformat(last.decode()) < timedelta(hours=1):
            return True
        late_cooldown[hotel.encode()] = at.isoformat().encode()
        return False

    @app.timer(interval=60.0)
    async def find_silent_hotels() -> None:
        now = datetime.now(UTC)
        for key, stored in list(hotel_state.items()):
            if compliance.silence(msgspec.json.decode(stored, type=compliance.HotelState), key.decode(), now)[1]:
                await hotel_ticks.send(key=key, value=now.isoformat().encode())

    @app.agent(hotel_ticks, name="hotel-silence")
    async def hotel_silence(stream: faust.StreamT) -> None:
        async for key, raw in stream.items():
            stored = hotel_state.get(key)
            if stored is None:
                continue
            state = msgspec.json.decode(stored, type=compliance.HotelState)
            new_state, alerts = compliance.silence(state, key.decode(), datetime.fromisoformat(raw.decode()))
            if alerts:
                hotel_state[key] = msgspec.json.encode(new_state)
                await send_alerts(alerts)

    @app.agent(wl_vehicles_topic, name="watchlist-vehicles")
    async def retro_vehicles(stream: faust.StreamT) -> None:
        async for batch in stream.take(1000, within=2):
            await retro_hunt(batch, VehicleEntry, MessageKind.PLATE_READ)

    @app.agent(wl_persons_topic, name="watchlist-persons")
    async def retro_persons(stream: faust.StreamT) -> None:
        async for batch in stream.take(1000, within=2):
            await retro_hunt(batch, PersonEntry, MessageKind.REGISTRATION)

    async def retro_hunt(batch: list, entry_type: type, kind: MessageKind) -> None:
        """New or changed entries are hunted for in the reads of the last ``retro_hours``."""
        entries = []
        for raw in batch:
            if raw is None:
                continue  # a deletion
            try:
                entries.append(schemas.decode_as(entry_type, raw))
            except SchemaError:
                continue
        if not entries or ws.retro_hours <= 0:
            return
        records = await scan_recent(k, topics.KAFKA_TOPICS[kind], lookback_start(ws.retro_hours))
        hits = retro.hunt(entries, [r for _, r in records], kind)
        logger.info("retro-hunt: %d entries against %d recent events: %d hits", len(entries), len(records), len(hits))
        await send_alerts(hits)

    @app.agent(feedback_topic, name="alert-feedback")
    async def alert_feedback(stream: faust.StreamT) -> None:
        async for raw in stream:
            fb = await decode(schemas.AlertFeedback, raw, topics.KAFKA_FEEDBACK)
            if fb is None:
                continue
            stored = alert_last.get(fb.alert_id.encode())
            if stored is None:
                logger.warning("feedback for an unknown alert; counted only")
                sink().add(metrics.feedback_points("unknown", "", fb.decision.value, fb.at))
                continue
            alert = schemas.decode_as(Alert, stored)
            sink().add(metrics.feedback_points(alert.type, str(alert.details.get("match", "")), fb.decision.value,
                                               fb.at))
            if alert.state is AlertState.FIRING:
                await send_alerts([watch_alerts.decided(alert, fb.decision.value, fb.reason, fb.by, fb.at)])

    @app.agent(event_topics[MessageKind.REGISTRATION], name="registrations")
    async def registrations(stream: faust.StreamT) -> None:
        async for raw in stream:
            reg = await decode(MessageKind.REGISTRATION, raw, topics.KAFKA_TOPICS[MessageKind.REGISTRATION])
            if reg is None:
                continue
            sink().add(metrics.registration_points(reg, ws.late_upload_s))
            at = reg.ingested_at or reg.checkin_at
            if reg.id_type is IdType.RESIDENT_ID and not check_id(reg.id_number, at.date()).valid:
                sink().add(metrics.data_quality_points("hotel_id", reg.hotel_id, "invalid-id", at))
            await replica.ready.wait()
            subject = watch_alerts.person_subject(reg)
            for m in replica.persons.match(reg.id_number, reg.guest_name, reg.birth_date, reg.nationality,
                                           reg.checkin_at):
                if not m.alert:
                    continue
                suppressed = await cooled(watch_alerts.cooldown_key(m.entry_id, subject, reg.hotel_id), reg.checkin_at)
                sink().add(metrics.watchlist_points("persons", reg.hotel_id, m.kind, suppressed, reg.checkin_at))
                if not suppressed:
                    await send_alerts([watch_alerts.person_alert(reg, m, subject)])
            hkey = reg.hotel_id.encode()
            stored = hotel_state.get(hkey)
            hstate = msgspec.json.decode(stored, type=compliance.HotelState) if stored else compliance.HotelState()
            hstate, alerts = compliance.registered(hstate, reg.hotel_id, reg.checkin_at)
            hotel_state[hkey] = msgspec.json.encode(hstate)
            await send_alerts(alerts)
            delay = (at - reg.checkin_at).total_seconds()
            if delay > ws.late_upload_s and not await late(reg.hotel_id, at):
                await send_alerts([compliance.late_upload_alert(reg.hotel_id, reg.registration_id, delay, at)])

    @app.agent(event_topics[MessageKind.STATUS], name="device-status")
    async def device_status(stream: faust.StreamT) -> None:
        async for raw in stream:
            status = await decode(MessageKind.STATUS, raw, topics.KAFKA_TOPICS[MessageKind.STATUS])
            if status is None:
                continue
            sink().add(metrics.status_points(status))
            key = status.device_id.encode()
            if key in gas_state:  # a gas sensor we know: its last will means offline now
                state = load_gas(key)
                at = status.at or status.ingested_at or datetime.now(UTC)
                new_state, alerts = gas.status(state, status.device_id, status.state is DeviceState.ONLINE, at,
                                               gas_cfg(status.device_id))
                await save_gas(key, state, new_state, alerts)

    @app.agent(alerts_topic, name="alerts")
    async def alert_transitions(stream: faust.StreamT) -> None:
        async for raw in stream:
            alert = await decode(Alert, raw, topics.KAFKA_ALERTS)
            if alert is None:
                continue
            key = alert.alert_id.encode()
            last = notified.get(key)
            publisher = app.output("alerts")
            if not notify.should_notify(last.decode() if last else None, alert) or \
                    await publisher.already_published(alert):
                logger.info("alert %s %s already notified; replay skipped", alert.type, alert.state.value)
                notified[key] = notify.position(alert).encode()
                continue
            await publisher.publish(alert)
            notified[key] = notify.position(alert).encode()
            alert_last[key] = raw
            sink().add(metrics.alert_points(alert))
            logger.info("alert %s %s for %s", alert.type, alert.state.value, alert.device_id)

    @app.agent(dead_letter_topic, name="dead-letters")
    async def dead_letters(stream: faust.StreamT) -> None:
        async for raw in stream:
            try:
                dl = schemas.decode_as(schemas.DeadLetter, raw)
            except SchemaError as exc:  # a dead letter about a dead letter would loop: count it only
                logger.error("unreadable dead letter (%s); counted and skipped", exc.code)
                dl = schemas.dead_letter(STAGE, "unreadable-dead-letter", str(exc), topics.KAFKA_DEAD_LETTERS,
                                         raw or b"", datetime.now(UTC))
            sink().add(metrics.dead_letter_points(dl))

    return app


def run_worker(settings: Settings) -> None:
    """Run one worker until SIGINT/SIGTERM (Faust's Worker handles the signals and shutdown)."""
    asyncio.run(ensure_topics(settings.kafka))
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), quiet=True)
    worker.execute_from_commandline()
