"""Metric points leave the alarm path through Kafka: the worker (and the alert service) produce
them to ``safecity.metrics.v1`` and the metrics writer (``processors/metrics_writer.py``, its own
consumer group) writes them to InfluxDB. InfluxDB being slow or down delays nothing but the
writer; the backlog waits in Kafka (counted as the writer's lag) and is written when it is back.

A record is a JSON array of points, ``{"measurement", "tags", "fields", "time"}``, as
influxdb-client's write API takes them."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from processors.rules.metrics import MetricPoint


def encode(points: list[MetricPoint]) -> bytes:
    return msgspec.json.encode([{"measurement": p.measurement, "tags": p.tags, "fields": p.fields, "time": p.time}
                                for p in points])


class FaustTopicSink:
    """For the Faust worker: ``send_soon`` buffers in Faust's producer, which Faust flushes before it
    commits offsets, so a point is in Kafka before its event counts as done (at least once)."""

    def __init__(self, topic: Any) -> None:
        self.topic = topic

    def add(self, points: list[MetricPoint]) -> None:
        if points:
            self.topic.send_soon(key=points[0].measurement.encode(), value=encode(points))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class ProducerSink:
    """For asyncio services with an aiokafka producer (the alert service): sends without waiting."""

    def __init__(self, producer: Any, topic: str) -> None:
        self.producer, self.topic = producer, topic
        self.pending: set[asyncio.Future] = set()

    def add(self, points: list[MetricPoint]) -> None:
        if points:
            task = asyncio.ensure_future(self.producer.send(self.topic, encode(points),
                                                            key=points[0].measurement.encode()))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass
