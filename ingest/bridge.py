"""The MQTT -> Kafka bridge: a thin adapter around ``ingest.validate``.

Each device kind has its own lane: its own MQTT client and persistent session
(``<ingest_client_id>-<kind>``), so its own queue at the broker, and its own bounded hand-off. A burst
of one kind (a checkpoint's 400 KB snapshots) therefore never queues a gas reading behind it, at
the broker or here: the one producer loop takes from the lanes in turn.

paho's network threads hand messages to the asyncio loop without waiting for it: a message goes
on its lane's queue, and the loop is woken once for whatever has queued since it last looked, not
once per message (a semaphore per lane bounds the hand-off and blocks when it is full, so
back-pressure reaches the broker over TCP). Woken from idle, the producer loop first lets messages
gather for ``SAFECITY_KAFKA__LINGER_MS``, then validates and produces everything queued without
waiting (it yields only if the producer's buffer is full), so each partition's records of that burst
leave in one batch (the producer itself does not linger: the loop has). While behind, it never waits.

The kinds in ``topics.PACKED_KINDS`` (gas readings) go to Kafka in packs: the burst's accepted
events of one topic partition (their keys' partition, murmur2 as Kafka's default partitioner) become
one record, a JSON array of the events unchanged (``schemas.pack``), produced when the burst is
taken or once the loop has taken ``PACK_ROUND`` messages or ``PACK_ROUND_BYTES`` of any kind since
the packs were begun. A lone event is a record of its own, keyed by its device as every other
kind's. So the worker pays its cost per record (Faust's per-event machinery, the fetch) once per
pack rather than once per reading; the order per device is kept. Everything else, and every dead
letter, is one record per message. A reading at an alarming level (``validate.Urgency``) goes, never
packed and at once, to its kind's urgent topic (``topics.KAFKA_URGENT``), past the routine backlog.

It acknowledges each MQTT message (manual ack, QoS 1, persistent session) only once Kafka has
confirmed the record that carries it. A message Kafka never confirms is never acknowledged: after
a crash or restart the broker redelivers it.
In-flight messages are bounded per session by the broker's ``max_inflight_messages``.

A Kafka outage of any length is ridden out: a send Kafka refuses (or times out) goes to a
redelivery list; the producer loop stops taking new messages and resends that list in order, with
capped backoff, until Kafka takes it, then carries on. Meanwhile nothing more is acknowledged, so
the broker holds the backlog in the bridge's persistent session (bounded by its
``max_queued_bytes``), and one line every 30 s says how long Kafka has been away and how much waits
(aiokafka's own connection errors are rate-limited the same way).

Scaling out: with ``mqtt.ingest_share_group`` set, each lane subscribes as ``$share/<group>/...``
and several bridges (each with its own ``ingest_client_id``) split the messages between them; every
record says which bridge took it (Kafka header ``ingest``). The broker keeps a stopped bridge's
persistent session, and its share of the messages, until it is back: nothing is lost, but that
share waits. Two bridges may put one device's messages into Kafka out of order; a gas reading
older than one already applied goes to the metrics, not into the alarm state (``gas.replayed``).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import msgspec
import paho.mqtt.client as mqtt
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from deploy.kafka_topics import client_args, ensure_topics, partition_of
from deploy.keys import sealer
from ingest.validate import Accepted, Rejected, UrgentDevices, Urgency, validate
from models import schemas, topics
from models.settings import Settings
from safecity.health import Check, serve_from_settings
from safecity.mqtt import make_mqtt_client
from safecity.registry import RegistryFile

logger = logging.getLogger(__name__)

PERSONAL_NAMESPACE = f"{topics.PREFIX}/{topics.PERSONAL_DEVICE_KIND.value}/"  # its dead letters are sealed
MQTT_GRACE_S = 10.0  # a lane reconnecting for longer than this fails the health check


class Counters:
    def __init__(self) -> None:
        self.accepted: collections.Counter[str] = collections.Counter()
        self.dead_letters: collections.Counter[str] = collections.Counter()
        self.pending = 0

    def snapshot(self, queue_depth: int) -> dict:
        return {"component": "ingest", "at": datetime.now(UTC).isoformat(),
                "accepted": dict(self.accepted), "dead_letters": dict(self.dead_letters),
                "queue": queue_depth, "pending": self.pending}


class RateLimit(logging.Filter):
    """For loggers under ``prefix``: at most one record per logger and message template every
    ``every_s``; the next one says how many were held back."""

    def __init__(self, prefix: str, every_s: float = 30.0) -> None:
        super().__init__()
        self.prefix, self.every_s = prefix, every_s
        self.last: dict[tuple[str, object], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        import time

        if not record.name.startswith(self.prefix):
            return True
        key = (record.name, record.msg)
        now = time.monotonic()
        at, held = self.last.get(key, (-1e9, 0))
        if now - at < self.every_s:
            self.last[key] = (at, held + 1)
            return False
        self.last[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} [{held} more like this in the last {self.every_s:.0f} s]"
        return True


class Lane:
    """One device kind's way in: an MQTT client with its own persistent session and subscription,
    and a bounded hand-off from its network thread to the producer loop."""

    def __init__(self, bridge: Bridge, kind: topics.DeviceKind) -> None:
        settings = bridge.settings
        self.bridge, self.kind = bridge, kind
        own = tuple(s for s in topics.INGEST_SUBSCRIPTIONS if s.startswith(f"{topics.PREFIX}/{kind.value}/"))
        share = settings.mqtt.ingest_share_group  # several bridges: the broker gives each message to one of them
        self.subscriptions = tuple(f"$share/{share}/{s}" for s in own) if share else own
        # appended to by paho's thread, taken from by the loop (a deque's append and popleft are atomic)
        self.pending: collections.deque[mqtt.MQTTMessage] = collections.deque()
        self.signalled = False  # a wake-up of the loop for this lane is on its way (set here, cleared there)
        self.slots = threading.BoundedSemaphore(settings.ingest.queue_size)
        self.client = make_mqtt_client(settings.mqtt, f"{settings.mqtt.ingest_client_id}-{kind.value}",
                                       clean_session=False, manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.down_since: float | None = time.monotonic()  # not connected since (None: connected)

    # ---- paho thread
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            logger.error("MQTT connect refused (%s lane): %s", self.kind.value, reason_code)
            return
        self.down_since = None
        client.subscribe([(t, 1) for t in self.subscriptions])
        logger.info("MQTT connected (%s lane, session present: %s); subscribed to %s",
                    self.kind.value, flags.session_present, ", ".join(self.subscriptions))

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        bridge = self.bridge
        assert bridge.loop is not None
        # A slot in the bounded hand-off first (blocking while it is full: back-pressure reaches the
        # broker over TCP), then the message is queued without waiting for the loop to take it.
        while not self.slots.acquire(timeout=1.0):
            if bridge.stopping.is_set():  # shutting down with a full queue: do not hang the thread
                return  # not acknowledged: the broker redelivers it to the next session
        if bridge.stopping.is_set():
            self.slots.release()
            return
        self.pending.append(msg)
        if self.signalled:
            return
        self.signalled = True
        try:
            bridge.loop.call_soon_threadsafe(bridge.arrive, self)
        except RuntimeError:  # the loop is closing: what is queued stays unacknowledged
            logger.warning("delivery not queued during shutdown; the broker will redeliver it")

    # ---- asyncio side
    def take(self) -> mqtt.MQTTMessage:
        msg = self.pending.popleft()
        self.slots.release()
        return msg


#: A message on its way to Kafka: the lane it came by (to acknowledge it there), and its verdict.
Pending = tuple[Lane, mqtt.MQTTMessage, Accepted | Rejected]
#: What one Kafka record carries: one message, or a pack of accepted events of one topic partition.
Batch = list[Pending]
#: A burst's packs are produced once the loop has taken this many messages, or bytes, since they were
#: begun (of any kind: a burst of snapshots does not hold a gas reading back), or the lanes are empty.
#: While the loop is behind, a reading waits in its pack at most for the taking of one such round.
PACK_ROUND = 256
PACK_ROUND_BYTES = 512 * 1024


class Bridge:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.counters = Counters()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping = asyncio.Event()
        self.lanes = [Lane(self, kind) for kind in topics.DeviceKind]
        self.turn = 0  # the lane the producer loop looks at first next time
        self.arrived = asyncio.Event()  # a lane has a message
        self.producer: AIOKafkaProducer | None = None
        self.registry = RegistryFile(settings.registry)
        self.lookup = self.registry.get if self.registry.enforced else None
        self.max_ahead = timedelta(seconds=settings.ingest.max_clock_ahead_s)
        self.max_age = timedelta(seconds=settings.ingest.max_event_age_s)
        urgent = UrgentDevices(Urgency(settings.ingest.urgent_lel, settings.ingest.urgent_co_ppm))
        self.urgent = lambda event: urgent(event, time.monotonic())
        self.redeliver: collections.deque[Batch] = collections.deque()
        self.wake = asyncio.Event()  # a failed send is waiting for redelivery
        self.outage_since = 0.0
        self.inflight: dict[int, Batch] = {}  # send number -> what that record carries
        self.packs: dict[tuple[str, int], Batch] = {}  # (topic, partition) -> accepted events of this burst
        self.taken = self.taken_bytes = 0  # messages, and their bytes, taken since the packs were begun
        self.sent = 0
        self.linger_s = settings.kafka.linger_ms / 1000  # the loop's gathering, woken from idle
        self.idle = True  # the producer loop found the lanes empty last time it looked
        self.generation = 0  # of the producer; callbacks from a replaced one are ignored
        self.stale = False
        self.headers = [("ingest", settings.mqtt.ingest_client_id.encode())]  # which bridge took it (operations)
        self.last_ack = 0.0  # monotonic time Kafka last confirmed a message
        self.sealer = sealer(settings)
        self.health = serve_from_settings("ingest", settings)
        self.health.add("mqtt", self._mqtt_health)
        self.health.add("kafka", self._kafka_health)

    # ---- health (read from the health server's thread)
    def _mqtt_health(self) -> Check:
        now = time.monotonic()
        down = {lane.kind.value: round(now - lane.down_since, 1) for lane in self.lanes if lane.down_since is not None}
        return Check(all(d < MQTT_GRACE_S for d in down.values()), {"down_s": down})

    def _kafka_health(self) -> Check:
        now, waiting = time.monotonic(), len(self.redeliver)
        return Check(self.producer is not None and not waiting,
                     {"outage_s": round(now - self.outage_since, 1) if waiting else 0.0, "waiting": waiting,
                      "in_flight": len(self.inflight), "queued": self.queued(),
                      "last_ack_age_s": round(now - self.last_ack, 1) if self.last_ack else None})

    def arrive(self, lane: Lane) -> None:
        lane.signalled = False  # before the loop looks: a message queued from now on wakes it again
        self.arrived.set()

    def queued(self) -> int:
        return sum(len(lane.pending) for lane in self.lanes)

    def _next(self) -> Pending | None:
        """The next message, taking from the lanes in turn (so no kind waits behind another's burst)."""
        n = len(self.lanes)
        for i in range(n):
            lane = self.lanes[(self.turn + i) % n]
            if lane.pending:
                self.turn = (self.turn + i + 1) % n
                msg = lane.take()
                return lane, msg, validate(msg.topic, msg.payload, datetime.now(UTC), self.lookup, self.max_ahead,
                                           self.max_age, self.urgent)
        return None

    # ---- asyncio side
    async def run(self) -> None:
        self.loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.loop.add_signal_handler(sig, self.stopping.set)
        k = self.settings.kafka
        await ensure_topics(k)
        self.producer = self._make_producer()
        await self.producer.start()
        m = self.settings.mqtt
        for lane in self.lanes:
            lane.client.connect_async(m.host, m.port, keepalive=m.keepalive)
            lane.client.loop_start()
        stats = asyncio.create_task(self._publish_stats())
        beat = asyncio.create_task(self.health.heartbeat())
        work = asyncio.create_task(self._produce_loop())
        stop = asyncio.create_task(self.stopping.wait())
        try:
            done, _ = await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
            if work in done:
                work.result()
        finally:
            self.stopping.set()  # no new deliveries; queued ones stay unacknowledged and come back
            for task in (work, stats, stop, beat):
                task.cancel()
            try:  # in-flight sends complete and are acknowledged (unless Kafka is away: then redelivered)
                await asyncio.wait_for(self.producer.flush(), 15)
            except (asyncio.TimeoutError, KafkaError):
                logger.warning("stopping with %d messages Kafka has not confirmed; the broker will redeliver them",
                               len(self.inflight) + len(self.redeliver))
            try:
                await asyncio.wait_for(self.producer.stop(), 15)
            except (asyncio.TimeoutError, KafkaError):
                pass
            for lane in self.lanes:
                lane.client.disconnect()
                lane.client.loop_stop()
            self.health.close()
            logger.info("ingest stopped: %s", self.counters.snapshot(self.queued()))

    def _make_producer(self) -> AIOKafkaProducer:
        k = self.settings.kafka
        return AIOKafkaProducer(**client_args(k), acks="all", enable_idempotence=True,
                                linger_ms=0,  # the producer loop lingers (see the module's doc)
                                max_request_size=2 * 1024 * 1024,
                                client_id="safecity-ingest", request_timeout_ms=30000)

    async def _replace_producer(self) -> None:
        """After a failed send an idempotent producer's sequence numbers no longer match the broker's
        (OutOfOrderSequenceNumber for ever): start a new one, and resend everything the old one
        still had in flight (in send order; a copy Kafka did take may then arrive twice)."""
        fresh = self._make_producer()
        try:
            await fresh.start()  # raises while Kafka is unreachable: the caller retries
        except BaseException:
            await fresh.stop()
            raise
        old, self.producer = self.producer, fresh
        self.generation += 1
        self.redeliver.extend(batch for _, batch in sorted(self.inflight.items()))
        self.inflight.clear()
        if old is not None:
            try:
                await asyncio.wait_for(old.stop(), 5)
            except Exception:  # noqa: BLE001 - the old producer's fate no longer matters
                pass

    async def _produce_loop(self) -> None:
        assert self.producer is not None
        while True:
            if self.redeliver:
                await self._redeliver()
                continue
            if self.idle and self.linger_s:  # woken from idle: what queues meanwhile goes in the same burst
                await asyncio.sleep(self.linger_s)
            self.idle = False
            item = self._next()
            if item is None:
                if self.packs:  # the burst is taken: its packs go (and whatever queued meanwhile after them)
                    await self._produce_packs()
                    continue
                await self._wait()
                self.idle = True
                continue
            lane, msg, result = item
            self.counters.pending += 1
            partition = self._partition(result) if isinstance(result, Accepted) else None
            if partition is not None:
                self.packs.setdefault((result.kafka_topic, partition), []).append(item)  # type: ignore[union-attr]
            else:
                if isinstance(result, Rejected):
                    logger.info("dead letter %s from %s", result.dead_letter.reason_code, msg.topic[:120])
                elif result.urgent:  # the device's events still in this burst's packs go first
                    for earlier in self._take_packed(result):
                        await self._produce([earlier])
                await self._produce([item])
            if self.packs:
                self.taken += 1
                self.taken_bytes += len(msg.payload)
                if self.taken >= PACK_ROUND or self.taken_bytes >= PACK_ROUND_BYTES:
                    await self._produce_packs()

    def _partition(self, result: Accepted) -> int | None:
        """For a kind that goes in packs, the partition Kafka's default partitioner gives the event's
        key (murmur2, as for any keyed record: a device's events stay in one partition whether packed
        or not); None for other kinds, and while the producer has no metadata for the topic yet. An
        urgent event (``topics.KAFKA_URGENT``) is never packed: it goes at once, as a record of its own."""
        if result.kind not in topics.PACKED_KINDS or result.urgent:
            return None
        return self._partition_in(result.kafka_topic, result.key)

    def _partition_in(self, topic: str, key: bytes) -> int | None:
        """``key``'s partition of ``topic`` (Kafka's default partitioner); None without its metadata yet."""
        assert self.producer is not None
        partitions = self.producer.client.cluster.partitions_for_topic(topic)
        return partition_of(key, len(partitions)) if partitions else None

    def _take_packed(self, urgent: Accepted) -> Batch:
        """The urgent event's device's events still waiting in this burst's packs, taken out (in order)
        and bound for the urgent topic too, to be produced ahead of it: the device's order holds."""
        routine = topics.KAFKA_TOPICS[urgent.kind]
        key = (routine, self._partition_in(routine, urgent.key))
        pack = self.packs.get(key, [])
        mine = [item for item in pack if item[2].key == urgent.key]
        if not mine:
            return []
        rest = [item for item in pack if item[2].key != urgent.key]
        if rest:
            self.packs[key] = rest
        else:
            del self.packs[key]
        return [(lane, msg, dataclasses.replace(r, kafka_topic=urgent.kafka_topic)) for lane, msg, r in mine]

    async def _produce_packs(self) -> None:
        packs, self.packs, self.taken, self.taken_bytes = self.packs, {}, 0, 0
        for batch in packs.values():
            await self._produce(batch)

    async def _produce(self, batch: Batch) -> None:
        """Send one record: one message, or a pack; each of its messages is acknowledged when Kafka
        confirms the record."""
        try:
            fut = await self._send(batch)
        except (KafkaError, asyncio.TimeoutError, OSError) as exc:
            self._failed(batch, exc)
            return
        self.sent += 1
        self.inflight[self.sent] = batch
        fut.add_done_callback(lambda f, n=self.sent, g=self.generation: self._delivered(f, n, g))

    async def _wait(self) -> None:
        """Until a lane is woken for a message queued after ``_next`` found none (or a failed send
        waits for redelivery)."""
        self.arrived.clear()
        self.wake.clear()
        arrival = asyncio.ensure_future(self.arrived.wait())
        waker = asyncio.ensure_future(self.wake.wait())
        await asyncio.wait({arrival, waker}, return_when=asyncio.FIRST_COMPLETED)
        arrival.cancel()
        waker.cancel()

    async def _send(self, batch: Batch) -> asyncio.Future:
        assert self.producer is not None
        if len(batch) > 1:  # a pack: accepted events of one partition (see _produce_loop), in arrival order
            first: Accepted = batch[0][2]  # type: ignore[assignment]
            value = schemas.pack([item[2].value for item in batch])  # type: ignore[union-attr]
            partitions = await self.producer.partitions_for(first.kafka_topic)  # known by now (the grouping used it)
            partition = partition_of(first.key, len(partitions))
            return await self.producer.send(first.kafka_topic, value, partition=partition, headers=self.headers)
        result = batch[0][2]
        if isinstance(result, Accepted):
            value = result.value
            if result.kind in topics.PERSONAL_KINDS:  # sealed before it reaches Kafka (models/sealed.py)
                value = self.sealer.seal(value, result.kafka_topic, result.key)
            return await self.producer.send(result.kafka_topic, value, key=result.key, headers=self.headers)
        dl = result.dead_letter
        if dl.source.startswith(PERSONAL_NAMESPACE) and not dl.sealed:  # keeps the reason; the raw copy sealed
            dl = msgspec.structs.replace(dl, payload=self.sealer.seal(dl.payload, topics.KAFKA_DEAD_LETTERS, result.key),
                                         sealed=True)
        return await self.producer.send(topics.KAFKA_DEAD_LETTERS, schemas.encode(dl), key=result.key,
                                        headers=self.headers)

    def _failed(self, batch: Batch, error: BaseException | None) -> None:
        self.stale = True  # the producer's idempotence state is now out of step with the broker's
        if not self.redeliver:
            logger.error("Kafka did not take a message (%r); holding MQTT acknowledgements and retrying", error)
            self.outage_since = self.loop.time() if self.loop else 0.0
        self.redeliver.append(batch)
        self.wake.set()

    async def _redeliver(self) -> None:
        """Resend the failed messages in order until Kafka takes each (on a new producer); then carry on."""
        delay, last_log, count = 0.5, self.loop.time(), 0
        while self.redeliver:
            batch = self.redeliver[0]
            try:
                if self.stale:
                    await self._replace_producer()
                    self.stale = False
                await (await self._send(batch))
            except (KafkaError, asyncio.TimeoutError, OSError) as exc:
                self.stale = True
                now = self.loop.time()
                if now - last_log >= 30:
                    logger.error("Kafka unavailable for %.0f s (%s); %d messages waiting here, more at the broker",
                                 now - self.outage_since, type(exc).__name__, len(self.redeliver))
                    last_log = now
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            self.redeliver.popleft()
            self._done(batch)
            count += len(batch)
            delay = 0.5
        logger.warning("Kafka is back after %.0f s: %d messages redelivered", self.loop.time() - self.outage_since,
                       count)

    def _delivered(self, fut: asyncio.Future, n: int, generation: int) -> None:
        if generation != self.generation:
            return  # that producer was replaced; its messages were queued for redelivery then
        batch = self.inflight.pop(n)
        if fut.cancelled() or fut.exception() is not None:
            self._failed(batch, None if fut.cancelled() else fut.exception())
            return
        self._done(batch)

    def _done(self, batch: Batch) -> None:
        """Kafka has the record: count its messages and acknowledge each to the broker, on the lane it
        came by."""
        self.last_ack = time.monotonic()
        for lane, msg, result in batch:
            self.counters.pending -= 1
            if isinstance(result, Accepted):
                self.counters.accepted[result.kind.value] += 1
            else:
                self.counters.dead_letters[result.dead_letter.reason_code] += 1
            if msg.qos > 0:
                lane.client.ack(msg.mid, msg.qos)

    async def _publish_stats(self) -> None:
        topic = topics.stats_topic("ingest")
        while True:
            await asyncio.sleep(self.settings.ingest.stats_interval_s)
            payload = schemas.encode(self.counters.snapshot(self.queued()))
            self.lanes[0].client.publish(topic, payload, qos=0)


def run(settings: Settings) -> None:
    for handler in logging.getLogger().handlers:  # a Kafka outage must not flood the logs
        handler.addFilter(RateLimit("aiokafka"))
    asyncio.run(Bridge(settings).run())
