"""InfluxDB metric sink: influxdb-client's batching writer (a background thread), so the alert
path never waits on InfluxDB. Failed batches are retried by the client and then logged."""

from __future__ import annotations

import logging

from influxdb_client import InfluxDBClient, WriteOptions, WritePrecision

from models.settings import InfluxSettings
from processors.rules.metrics import MetricPoint

logger = logging.getLogger(__name__)


def to_record(point: MetricPoint) -> dict:
    return {"measurement": point.measurement, "tags": point.tags, "fields": point.fields, "time": point.time}


class InfluxSink:
    def __init__(self, settings: InfluxSettings) -> None:
        self.settings = settings
        self.client = InfluxDBClient(url=settings.url, token=settings.token.get_secret_value(), org=settings.org)
        options = WriteOptions(batch_size=settings.batch_size, flush_interval=settings.flush_interval_ms,
                               retry_interval=1000, max_retries=5, max_retry_delay=30_000)
        self.write_api = self.client.write_api(write_options=options, error_callback=self._failed)
        self.written = 0

    def _failed(self, conf, data, exc: Exception) -> None:
        logger.error("InfluxDB write of %s bytes failed: %s", len(data), exc)

    def add(self, points: list[MetricPoint]) -> None:
        if points:
            self.write_api.write(bucket=self.settings.bucket, org=self.settings.org,
                                 record=[to_record(p) for p in points], write_precision=WritePrecision.NS)
            self.written += len(points)

    def flush(self) -> None:
        self.write_api.flush()

    def close(self) -> None:
        self.write_api.close()
        self.client.close()
