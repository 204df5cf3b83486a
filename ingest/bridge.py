"""The MQTT -> Kafka bridge: a thin adapter around ``ingest.validate``.

paho's network thread hands each message to a bounded asyncio queue (blocking when it is full,
so back-pressure reaches the broker over TCP); one producer loop validates, produces to Kafka,
and acknowledges the MQTT message (manual ack, QoS 1, persistent session) only once Kafka has
confirmed it. A message Kafka never confirms is never acknowledged: after a crash or restart the
broker redelivers it. In-flight messages are bounded by the broker's ``max_inflight_messages``.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import signal
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from aiokafka import AIOKafkaProducer

from deploy.kafka_topics import ensure_topics
from ingest.validate import Accepted, Rejected, validate
from models import schemas, topics
from models.settings import Settings
from safecity.mqtt import make_mqtt_client
from safecity.registry import RegistryFile

logger = logging.getLogger(__name__)


class Counters:
    def __init__(self) -> None:
        self.accepted: collections.Counter[str] = collections.Counter()
        self.dead_letters: collections.Counter[str] = collections.Counter()
        self.pending = 0

    def snapshot(self, queue_depth: int) -> dict:
        return {"component": "ingest", "at": datetime.now(UTC).isoformat(),
                "accepted": dict(self.accepted), "dead_letters": dict(self.dead_letters),
                "queue": queue_depth, "pending": self.pending}


class Bridge:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.counters = Counters()
        self.queue: asyncio.Queue[mqtt.MQTTMessage] = asyncio.Queue(maxsize=settings.ingest.queue_size)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.failed: BaseException | None = None
        self.stopping = asyncio.Event()
        self.client = make_mqtt_client(settings.mqtt, settings.mqtt.ingest_client_id, clean_session=False,
                                       manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.producer: AIOKafkaProducer | None = None
        self.registry = RegistryFile(settings.registry)
        self.lookup = self.registry.get if self.registry.enforced else None

    # ---- paho thread
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            logger.error("MQTT connect refused: %s", reason_code)
            return
        client.subscribe([(t, 1) for t in topics.INGEST_SUBSCRIPTIONS])
        logger.info("MQTT connected (session present: %s); subscribed to %s",
                    flags.session_present, ", ".join(topics.INGEST_SUBSCRIPTIONS))

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        assert self.loop is not None
        if self.stopping.is_set():
            return  # not acknowledged: the broker redelivers it to the next session
        fut = asyncio.run_coroutine_threadsafe(self.queue.put(msg), self.loop)
        while True:  # blocks while the queue is full: back-pressure reaches the broker over TCP
            try:
                fut.result(timeout=1.0)
                return
            except concurrent.futures.TimeoutError:
                if self.stopping.is_set():  # shutting down with a full queue: do not hang the thread
                    fut.cancel()
                    return
            except Exception:  # noqa: BLE001 - loop closing: leave the message unacknowledged
                logger.warning("delivery not queued during shutdown; the broker will redeliver it")
                return

    # ---- asyncio side
    async def run(self) -> None:
        self.loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.loop.add_signal_handler(sig, self.stopping.set)
        k = self.settings.kafka
        await ensure_topics(k)
        self.producer = AIOKafkaProducer(bootstrap_servers=k.bootstrap, acks="all", enable_idempotence=True,
                                         linger_ms=k.linger_ms, max_request_size=2 * 1024 * 1024,
                                         client_id="safecity-ingest", request_timeout_ms=30000)
        await self.producer.start()
        m = self.settings.mqtt
        self.client.connect_async(m.host, m.port, keepalive=m.keepalive)
        self.client.loop_start()
        stats = asyncio.create_task(self._publish_stats())
        work = asyncio.create_task(self._produce_loop())
        stop = asyncio.create_task(self.stopping.wait())
        try:
            done, _ = await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
            if work in done:
                work.result()
        finally:
            self.stopping.set()  # no new deliveries; queued ones stay unacknowledged and come back
            for task in (work, stats, stop):
                task.cancel()
            await self.producer.flush()  # in-flight sends complete and are acknowledged
            await self.producer.stop()
            self.client.disconnect()
            self.client.loop_stop()
            logger.info("ingest stopped: %s", self.counters.snapshot(self.queue.qsize()))
        if self.failed:
            raise self.failed

    async def _produce_loop(self) -> None:
        assert self.producer is not None
        while True:
            msg = await self.queue.get()
            result = validate(msg.topic, msg.payload, datetime.now(UTC), self.lookup)
            if isinstance(result, Accepted):
                fut = await self.producer.send(result.kafka_topic, result.value, key=result.key)
            else:
                fut = await self.producer.send(topics.KAFKA_DEAD_LETTERS, schemas.encode(result.dead_letter),
                                               key=result.key)
                logger.info("dead letter %s from %s", result.dead_letter.reason_code, msg.topic[:120])
            self.counters.pending += 1
            fut.add_done_callback(lambda f, msg=msg, result=result: self._delivered(f, msg, result))

    def _delivered(self, fut: asyncio.Future, msg: mqtt.MQTTMessage, result: Accepted | Rejected) -> None:
        self.counters.pending -= 1
        if fut.cancelled() or fut.exception() is not None:
            # Not acknowledged: stop, so that the broker redelivers it to the next session.
            error = None if fut.cancelled() else fut.exception()
            self.failed = self.failed or RuntimeError(f"Kafka did not take a message: {error!r}")
            self.stopping.set()
            return
        if isinstance(result, Accepted):
            self.counters.accepted[result.kind.value] += 1
        else:
            self.counters.dead_letters[result.dead_letter.reason_code] += 1
        if msg.qos > 0:
            self.client.ack(msg.mid, msg.qos)

    async def _publish_stats(self) -> None:
        topic = topics.stats_topic("ingest")
        while True:
            await asyncio.sleep(self.settings.ingest.stats_interval_s)
            payload = schemas.encode(self.counters.snapshot(self.queue.qsize()))
            self.client.publish(topic, payload, qos=0)


def run(settings: Settings) -> None:
    asyncio.run(Bridge(settings).run())
