"""`safecity metrics`: writes the metric points on ``safecity.metrics.v1`` to InfluxDB.

Its own consumer group, so InfluxDB being slow or down never holds back the alarm path: batches of
records are written with influxdb-client's synchronous write API (in a thread), and offsets are
committed only after InfluxDB took the batch (at least once; points are keyed by series and
time, so a replay overwrites itself). While InfluxDB is unreachable the batch is retried with
capped backoff, one log line every 30 s says how long and how much is waiting, and the backlog
stays in Kafka (retention: 7 days).
"""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import time
from datetime import UTC, datetime, timedelta

import msgspec
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

from deploy.kafka_topics import client_args, ensure_topics
from models import topics
from models.settings import Settings
from safecity.health import Check, serve_from_settings
from safecity.priority import lower_priority

logger = logging.getLogger(__name__)
READY = "metrics writer ready"


_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_STRING = str.maketrans({'"': r'\"', "\\": r"\\"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NS = timedelta(microseconds=1)


def line(point: dict) -> str:
    """One point as InfluxDB line protocol (nanosecond time), exactly as influxdb-client's ``Point``
    writes it (the unit tests hold the two side by side), at a fraction of its cost: building
    ``Point`` objects was most of the writer's time."""
    tags = []
    for k, v in sorted(point.get("tags", {}).items()):
        key, value = str(k).translate(_KEY), "" if v is None else _tag_value(v)
        if key and value:
            tags.append(f"{key}={value}")
    fields = []
    for k, v in sorted(point["fields"].items()):
        if v is None:
            continue
        key = str(k).translate(_KEY)
        if isinstance(v, bool):
            fields.append(f"{key}={str(v).lower()}")
        elif isinstance(v, int):
            fields.append(f"{key}={v}i")
        elif isinstance(v, float):
            if not math.isfinite(v):
                continue
            text = str(v)
            fields.append(f"{key}={text[:-2] if text.endswith('.0') else text}")
        else:
            fields.append(f'{key}="{str(v).translate(_STRING)}"')
    if not fields:
        return ""
    head = ",".join([str(point["measurement"]).translate(_MEASUREMENT), *tags])
    at = point.get("time")
    if at is None:
        return f"{head} {','.join(fields)}"
    t = datetime.fromisoformat(at) if isinstance(at, str) else at
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return f"{head} {','.join(fields)} {(t - _EPOCH) // _NS * 1000}"


def _tag_value(value: object) -> str:
    text = str(value).translate(_KEY)
    return text + " " if text.endswith("\\") else text


class MetricsWriter:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        i = settings.influx
        self.client = InfluxDBClient(url=i.url, token=i.token.get_secret_value(), org=i.org, timeout=30_000)
        self.write_api = self.client.write_api(write_options=SYNCHRONOUS)
        self.written = 0
        self.stopping = asyncio.Event()
        self.influx_down_since: float | None = None
        self.last_poll = 0.0
        self.health = serve_from_settings("metrics", settings)
        self.health.add("influxdb", lambda: Check(
            self.influx_down_since is None,
            {"down_s": round(time.monotonic() - self.influx_down_since, 1) if self.influx_down_since else 0.0,
             "written": self.written}))
        self.health.add("kafka", lambda: Check(  # not polled while a batch waits for InfluxDB: that is its check
            bool(self.last_poll) and (time.monotonic() - self.last_poll < 15 or self.influx_down_since is not None),
            {"last_poll_age_s": round(time.monotonic() - self.last_poll, 1) if self.last_poll else None}))

    def write(self, points: list[dict]) -> None:
        i = self.settings.influx
        lines = [text for p in points if (text := line(p))]
        for start in range(0, len(lines), i.batch_size):
            self.write_api.write(bucket=i.bucket, org=i.org, record="\n".join(lines[start:start + i.batch_size]),
                                 write_precision=WritePrecision.NS)
        self.written += len(points)

    async def write_until_taken(self, points: list[dict], records: int) -> bool:
        """Retry until InfluxDB takes the batch; False if the writer is stopping first."""
        delay, down_since, last_log = 0.5, None, 0.0
        while True:
            try:
                await asyncio.to_thread(self.write, points)
                self.influx_down_since = None
                if down_since is not None:
                    logger.warning("InfluxDB is back after %.0f s; writing the backlog", time.monotonic() - down_since)
                return True
            except Exception as exc:  # noqa: BLE001 - any failure: keep the batch and retry
                now = time.monotonic()
                down_since = down_since or now
                self.influx_down_since = down_since
                if now - last_log >= 30:
                    logger.error("InfluxDB not taking writes for %.0f s (%s); %d records (%d points) waiting, "
                                 "retrying", now - down_since, str(exc)[:200], records, len(points))
                    last_log = now
            try:
                await asyncio.wait_for(self.stopping.wait(), delay)
                return False
            except asyncio.TimeoutError:
                delay = min(delay * 2, 10.0)

    async def run(self) -> None:
        s = self.settings
        await ensure_topics(s.kafka)
        consumer = AIOKafkaConsumer(topics.KAFKA_METRICS, **client_args(s.kafka),
                                    group_id=f"{s.worker.app_id}-metrics", enable_auto_commit=False,
                                    auto_offset_reset="earliest", max_poll_interval_ms=3_600_000)
        await consumer.start()
        beat = asyncio.create_task(self.health.heartbeat())
        logger.info(READY)
        decode = msgspec.json.Decoder(list[dict]).decode
        try:
            while not self.stopping.is_set():
                batch = await consumer.getmany(timeout_ms=200, max_records=5000)
                self.last_poll = time.monotonic()
                points, records = [], 0
                for recs in batch.values():
                    for rec in recs:
                        records += 1
                        try:
                            points += decode(rec.value or b"[]")
                        except msgspec.DecodeError:
                            logger.error("unreadable metric record at %s[%d]@%d; skipped", rec.topic, rec.partition,
                                         rec.offset)
                if not records:
                    continue
                if points and not await self.write_until_taken(points, records):
                    break
                try:
                    await consumer.commit()
                except KafkaError as exc:  # written but not committed: a replay rewrites the same points
                    logger.warning("offset commit failed (%s); the batch may be written again", exc)
        finally:
            beat.cancel()
            self.health.close()
            await consumer.stop()
            self.write_api.close()
            self.client.close()


def run(settings: Settings) -> None:
    lower_priority(settings.background_nice)  # before any thread starts: they all inherit it

    async def main() -> None:
        writer = MetricsWriter(settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, writer.stopping.set)
        await writer.run()

    asyncio.run(main())
