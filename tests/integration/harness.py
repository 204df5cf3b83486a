"""Helpers for integration tests against the real Mosquitto, Kafka and InfluxDB."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from deploy.processes import PipelineProcess as Process  # noqa: F401 - the tests' name for it
from models.settings import KafkaSettings, Settings

ROOT = Path(__file__).resolve().parents[2]


def record_fault(**row: Any) -> None:
    """One row of the fault table (``python -m scripts.fault_table``): appended as a JSON line to
    ``$SAFECITY_FAULT_REPORT`` when that is set; nothing otherwise."""
    path = os.environ.get("SAFECITY_FAULT_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")


def poll(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Return check()'s first truthy result; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class Registry:
    """The device registry file the session's ingest and worker read; written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.devices: list[dict] = []
        self._write()

    def add(self, kind: str, device_id: str | None = None, **fields: Any) -> str:
        device_id = device_id or f"{kind}-{uuid.uuid4().hex[:8]}"
        self.devices.append({"id": device_id, "kind": kind} | fields)
        self._write()
        return device_id

    def _write(self) -> None:
        import yaml

        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump({"devices": self.devices}))
        tmp.replace(self.path)


class MqttProbe:
    """Subscribes to a topic filter and collects what arrives."""

    def __init__(self, settings: Settings, topic_filter: str) -> None:
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:8]}")
        subscribed = queue.Queue()
        self.client.on_connect = lambda c, *a: c.subscribe(topic_filter, qos=1)
        self.client.on_subscribe = lambda *a: subscribed.put(True)
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        self.client.connect(settings.mqtt.host, settings.mqtt.port)
        self.client.loop_start()
        subscribed.get(timeout=10)

    def next_json(self, timeout: float, where: Callable[[dict], bool] = lambda d: True,
                  include_retained: bool = False) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("no matching MQTT message arrived")
            try:
                msg = self.messages.get(timeout=remaining)
            except queue.Empty:
                continue
            if (msg.retain and not include_retained) or not msg.payload:
                continue  # an empty payload empties a retained alert: see retained()
            data = json.loads(msg.payload)
            if where(data):
                return data | {"_topic": msg.topic}

    def before(self, sentinel: Callable[[dict], bool], timeout: float) -> tuple[list[dict], dict]:
        """Every live message that arrives before the first one matching ``sentinel``, and that one.

        The sentinel is caused by something sent after the thing under test, through the same path
        (same device, so the same partition and worker), so a late duplicate or a transition that
        should not exist arrives before it: "nothing more" is shown by this list being empty, never
        by a quiet window."""
        out = []
        while True:
            data = self.next_json(timeout)
            if sentinel(data):
                return out, data
            out.append(data)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained(settings: Settings, topic_filter: str) -> dict[str, dict]:
    """What a client connecting now receives as retained under ``topic_filter`` (topic -> JSON): the
    retained messages arrive right after the subscription, before a sentinel published after it."""
    sentinel = f"safecity/v1/test/sentinel/{uuid.uuid4().hex}"
    got: dict[str, dict] = {}
    done = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"late-{uuid.uuid4().hex[:8]}")

    def on_message(c, u, m) -> None:
        if m.topic == sentinel:
            done.put(True)
        elif m.retain and m.payload:
            got[m.topic] = json.loads(m.payload)

    client.on_message = on_message
    client.on_connect = lambda c, *a: c.subscribe([(topic_filter, 1), (sentinel, 1)])
    client.on_subscribe = lambda c, *a: c.publish(sentinel, b"x", qos=1)
    client.connect(settings.mqtt.host, settings.mqtt.port)
    client.loop_start()
    try:
        done.get(timeout=20)
    finally:
        client.disconnect()
        client.loop_stop()
    return got


def at(alert: dict) -> datetime:
    """An alert's transition time."""
    return datetime.fromisoformat(alert["at"])


def influx_query(settings: Settings, q: str) -> list[dict]:
    url = f"http://127.0.0.1:{settings.services.influxdb_port}/query?" + urllib.parse.urlencode(
        {"db": settings.influx.bucket, "q": q})
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = json.load(resp)
    rows = []
    for result in body.get("results", []):
        if "error" in result:
            raise AssertionError(result["error"])
        for series in result.get("series", []):
            rows += [dict(zip(series["columns"], v, strict=True)) | {"_tags": series.get("tags", {})}
                     for v in series["values"]]
    return rows


def events_of(topic: str, key: bytes | None, value: bytes) -> list[tuple[bytes, bytes]]:
    """A record's events as (device id, event) pairs: a pack's (``topics.PACKED_KINDS``, ingest's
    burst of one partition) one by one, or the record itself."""
    from models import schemas, topics

    kind = next((k for k, name in topics.KAFKA_TOPICS.items() if name == topic), None)
    if kind not in topics.PACKED_KINDS or not value.startswith(b"["):
        return [(key or b"", value)]
    try:
        values = schemas.unpack(value)
    except schemas.SchemaError:  # a pack that does not parse (the worker dead-letters it)
        return [(b"", value)]
    out = []
    for v in values:
        try:
            device = schemas.decode_event(kind, v).device_id.encode()
        except schemas.SchemaError:  # not a valid event (the worker dead-letters it): no device to key it by
            device = b""
        out.append((device, v))
    return out


def expanded(topic: str, record: Any) -> list:
    """A consumed record as one record per event it carries (``events_of``): the same partition,
    offset, timestamp and headers, with the event's device id as key."""
    import dataclasses

    return [dataclasses.replace(record, key=k, value=v) for k, v in events_of(topic, record.key, record.value or b"")]


def kafka_records(settings: Settings, topic: str, where: Callable[[bytes, bytes], bool], timeout: float = 30,
                  count: int = 1) -> list:
    """Records on ``topic`` (from the beginning) that match, read until at least ``count`` have been
    found (all found so far are returned) or ``timeout`` has passed. A pack of events counts as its
    events, each a record keyed by its device (``expanded``)."""
    from aiokafka import AIOKafkaConsumer

    async def run() -> list:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka.bootstrap, auto_offset_reset="earliest",
                                    enable_auto_commit=False, group_id=None, max_partition_fetch_bytes=8 * 1024 * 1024)
        await consumer.start()
        found: list = []
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and len(found) < count:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    found += [e for r in records for e in expanded(topic, r) if where(e.key or b"", e.value or b"")]
        finally:
            await consumer.stop()
        return found

    return asyncio.run(run())


def kafka_all(settings: Settings, topic: str, where: Callable[[bytes, bytes], bool], count: int,
              timeout: float = 60) -> list:
    """The first ``count`` records on ``topic`` (from the beginning) that match; fails if fewer arrive."""
    found = kafka_records(settings, topic, where, timeout, count)
    if len(found) < count:
        raise AssertionError(f"{len(found)} of {count} records on {topic}")
    return found[:count]


def partition_of(key: str, partitions: int) -> int:
    """Kafka's default partitioner (murmur2), as ingest places a reading, packed or not."""
    from deploy import kafka_topics

    return kafka_topics.partition_of(key.encode(), partitions)


def kafka_config(kafka: KafkaSettings, kind: str, name: str) -> dict[str, str]:
    """The configuration the broker reports for a resource: ``kind`` "broker" (``name`` its id) or
    "topic"; connected as every client of the project is (``client_args``: brokers and security)."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    from deploy.kafka_topics import client_args

    async def run() -> dict[str, str]:
        admin = AIOKafkaAdminClient(**client_args(kafka))
        await admin.start()
        try:
            (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType[kind.upper()], name)])
        finally:
            await admin.close()
        (resource,) = response.resources
        return {entry[0]: entry[1] for entry in resource[4]}

    return asyncio.run(run())


def settled(settings: Settings, group: str, topic: str, timeout: float = 60) -> None:
    """Wait until consumer ``group`` has committed every partition of ``topic`` up to its end as of
    now: all it had to read is done (at least once: a group commits only after the work). With
    :meth:`MqttProbe.before` it closes what a sentinel alone leaves open: events of other devices
    travel on other partitions, so a late repeat from one of them could follow the sentinel; after
    the worker and then the alert service have settled, nothing sent earlier is still on its way."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    async def run() -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap, group_id=None)
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
        await consumer.start()
        await admin.start()
        try:
            await consumer.topics()  # loads the metadata partitions_for_topic reads
            parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
            end = await consumer.end_offsets(parts)
            deadline = time.monotonic() + timeout
            while True:
                done = await admin.list_consumer_group_offsets(group, partitions=parts)
                behind = {tp.partition: (done[tp].offset if tp in done else None, end[tp])
                          for tp in parts if end[tp] and (tp not in done or done[tp].offset < end[tp])}
                if not behind:
                    return
                if time.monotonic() > deadline:
                    raise AssertionError(f"group {group} not settled on {topic}: (committed, end) {behind}")
                await asyncio.sleep(0.2)
        finally:
            await admin.close()
            await consumer.stop()

    asyncio.run(run())
