"""InfluxDB metric sink: points are buffered and written in batches by a background thread
(influxdb-client's synchronous write API, so a failed batch is known), so the alert path never
waits on InfluxDB. ``flush()`` writes everything buffered and raises if InfluxDB did not take it:
the worker calls it before every offset commit, so an offset is committed only once its metrics
are stored, and a crash replays instead of losing them (at-least-once; points are keyed by series
and time, so a replay overwrites itself)."""

from __future__ import annotations

import logging
import threading
import time

from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

from models.settings import InfluxSettings
from processors.rules.metrics import MetricPoint

logger = logging.getLogger(__name__)

MAX_BUFFERED = 500_000  # points kept while InfluxDB is unreachable; beyond, the oldest are dropped (logged)


def to_record(point: MetricPoint) -> dict:
    return {"measurement": point.measurement, "tags": point.tags, "fields": point.fields, "time": point.time}


class InfluxSink:
    def __init__(self, settings: InfluxSettings) -> None:
        self.settings = settings
        self.client = InfluxDBClient(url=settings.url, token=settings.token.get_secret_value(), org=settings.org,
                                     timeout=30_000)
        self.write_api = self.client.write_api(write_options=SYNCHRONOUS)
        self.buffer: list[dict] = []
        self.lock = threading.Lock()  # guards the buffer
        self.writing = threading.Lock()  # one writer at a time, in order
        self.wake = threading.Event()
        self.closed = threading.Event()
        self.written = 0
        self.dropped = 0
        self.thread = threading.Thread(target=self._run, name="influx-sink", daemon=True)
        self.thread.start()

    def add(self, points: list[MetricPoint]) -> None:
        if not points:
            return
        with self.lock:
            self.buffer.extend(to_record(p) for p in points)
            if len(self.buffer) > MAX_BUFFERED:
                excess = len(self.buffer) - MAX_BUFFERED
                del self.buffer[:excess]
                self.dropped += excess
                logger.error("InfluxDB unreachable: dropped the %d oldest metric points", excess)
            full = len(self.buffer) >= self.settings.batch_size
        if full:
            self.wake.set()

    def _run(self) -> None:
        interval = self.settings.flush_interval_ms / 1000
        while not self.closed.is_set():
            self.wake.wait(interval)
            self.wake.clear()
            try:
                self.flush()
            except Exception as exc:  # noqa: BLE001 - kept buffered; retried next round
                logger.warning("InfluxDB write failed, will retry: %s", exc)
                time.sleep(min(interval * 5, 5.0))

    def flush(self) -> None:
        """Write everything buffered now; raise if InfluxDB does not take it (the points stay)."""
        with self.writing:
            with self.lock:
                batch, self.buffer = self.buffer, []
            done = 0
            try:
                while done < len(batch):
                    chunk = batch[done:done + self.settings.batch_size]
                    self.write_api.write(bucket=self.settings.bucket, org=self.settings.org, record=chunk,
                                         write_precision=WritePrecision.NS)
                    done += len(chunk)
                    self.written += len(chunk)
            except Exception:
                with self.lock:  # put back what was not written, in order, before anything newer
                    self.buffer = batch[done:] + self.buffer
                raise

    def close(self) -> None:
        self.closed.set()
        self.wake.set()
        self.thread.join(timeout=10)
        try:
            self.flush()
        finally:
            self.write_api.close()
            self.client.close()
