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
    """For the Faust worker: points are gathered and sent as one record per ``max_points`` (and by a
    timer every fraction of a second); a record per reading cost the broker and the writer more than
    the points themselves. ``flush`` hands what is gathered to Faust's producer (``send_soon``, in
    memory); the app calls it right before Faust flushes that producer for an offset commit, so a
    point is in Kafka before its event counts as done (at least once)."""

    def __init__(self, topic: Any, max_points: int = 500) -> None:
        self.topic, self.max_points = topic, max_points
        self.pending: list[MetricPoint] = []

    def add(self, points: list[MetricPoint]) -> None:
        self.pending += points
        if len(self.pending) >= self.max_points:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            points, self.pending = self.pending, []
            self.topic.send_soon(key=points[0].measurement.encode(), value=encode(points))

    def close(self) -> None:
        self.flush()


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
