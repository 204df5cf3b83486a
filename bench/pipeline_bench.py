"""The whole pipeline's cost per event, on the real servers, against the plain Mosquitto ceiling.

    python -m bench.pipeline_bench [--sensors 20000] [--rates 500,1000,2000,4000] [--step-s 10] [--repeat 3]
                                   [--watchlist 1000000] [--plate-rates 500,1000,2000,3000] [--parts ...]

Starts its own Mosquitto, Kafka and InfluxDB on free loopback ports, and the real ingest, worker,
alert service and metrics writer (SQLite alert store), all stopped by PID at the end. A load
generator in separate processes (``bench/mqtt_load``: QoS 1, at most 1,000 unacknowledged messages
each) publishes gas readings for ``--sensors`` registered sensors at each offered rate for
``--step-s`` seconds; then it prints, each figure the median of ``--repeat`` runs with its range (min-max):

- **Ceiling**: plain MQTT QoS 1, publishers and subscriber in separate processes (the baseline): as
  many publisher processes as the load's generators at the highest gas rate offered (one per 4,000/s),
  each publishing its share as fast as it goes, all started together.
- **Sustained rate per stage**: for each offered rate, what ingest (readings in Kafka), the worker
  (its metric points in Kafka) and the metrics writer (the readings' points in InfluxDB) had done by
  5 s after the generators stopped, per second of offer; a stage keeps up when it processed
  everything offered. The sustained rate is the highest offered rate that ingest and the worker kept
  up with in most runs (a run counts only if the generators published at least 95 % of the rate).
- **CPU per reading** of every process (ingest, worker with its image process, alert service,
  metrics writer, Kafka, Mosquitto, InfluxDB and its adapter) at the highest rate all kept up with.
- **Alert latency** at half that rate: a probe process raises gas alarms on sensors of its own
  (two readings over the first level) and times each from the publish of the reading that raises
  it to the alert on MQTT (published by the alert service); p50, p95, p99 per run; and the same
  split by stage (ingest, worker, alert service) from the readings' and alerts' Kafka timestamps,
  beside a plain Kafka consumer's own delay for those readings (the worker stage's baseline), and
  the share of the time the worker's loop thread waited for a core (the machine's cores full).
- **Rebalance pause**: at half load a second worker joins, later leaves; the longest time without
  a processed reading (the worker's metric records) after each.
- **Plate reads against a ``--watchlist``-entry list** (default 1,000,000 new-energy plates; the
  load's plates are ordinary ones, never listed): the import's time, the sustained rate per stage
  with CPU per read, watch-list hit latency at half that rate (a probe reads listed plates at a
  checkpoint of its own), split by stage as the gas alarms' is, and the longest pause in live
  matching while the whole list is imported again with every entry changed.

- **Worker memory**: a fresh worker's memory (PSS of it and its children) with empty watch lists and
  with ``--watchlist`` vehicles plus as many persons (with names and valid ID numbers) loaded.
- **Scaling**: the same ladder of gas rates with a second worker process in the group (each worker
  owns half the partitions), sustained rate and CPU per reading of every process: whether a second
  worker adds throughput on this machine's cores.

``--parts`` picks what to run (``rates,latency,rebalance,plates,scaling,memory``; latency and rebalance need
rates).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import msgspec
import paho.mqtt.client as mqtt

from bench.ingest_bench import baseline, payloads
from bench.kafka_events import events_in
from bench.mqtt_load import QoS1Publisher
from deploy import services
from deploy.kafka_topics import ensure_topics, partition_of
from deploy.processes import READY, ROOT, PipelineProcess
from models import schemas, topics
from models.schemas import GasReading, GasType, GasUnit, PlateColour, PlateRead
from models.settings import Settings
from models.topics import DeviceKind, MessageKind

GAS = "bench-gas"
ALARM = "bench-alarm"
PROBE_EVERY_S = 0.25  # one alarm (or watch-list hit) every this, 200 per run: p99 is not just the slowest
CHECKPOINT = "bench-cp"
PROBE_CP = "bench-probe-cp"
PER_GENERATOR = 4000  # msg/s one generator process is asked for at most
GRACE_S = 5.0
#: The latency probes start this long after the load's generator: its first seconds (the process's own
#: start, then the full rate at once) are a step in the load, not the steady rate the figure is for.
#: With 2 s, in one run of 3 at 2,500 readings/s each run's slowest alarm came in its first 5 s (172,
#: 103 and 114 ms; the rest of the runs at most 91, 47 and 50), and so did some runs' in other benches.
LOAD_SETTLE_S = 6.0


# ---------------------------------------------------------------- child processes
@dataclass(frozen=True)
class Load:
    """One kind of offered event: its devices, MQTT topic, Kafka topic and the worker's metric."""

    kind: str  # "gas" | "plates"
    device: str  # device id prefix
    message: MessageKind
    device_kind: DeviceKind
    measurement: str
    influx_count: str  # InfluxQL counting the load's points

    def device_id(self, i: int) -> str:
        return f"{self.device}-{i:05d}"


LOADS = {
    "gas": Load("gas", GAS, MessageKind.GAS_READING, DeviceKind.GAS, "gas",
                f"SELECT count(value) FROM gas WHERE sensor_id =~ /^{GAS}-/"),
    "plates": Load("plates", CHECKPOINT, MessageKind.PLATE_READ, DeviceKind.CAMERA, "plate_reads",
                   f"SELECT count(confidence) FROM plate_reads WHERE checkpoint_id =~ /^{CHECKPOINT}-/"),
}


def unlisted_plate(rng: random.Random) -> str:
    """An ordinary plate (a five-character serial): never on the benchmark's list, whose plates are
    all new-energy (six characters), so no exact, look-alike, partial or candidate match."""
    return rng.choice("京沪粤苏浙鲁川鄂") + rng.choice("ABCDEFGHJK") + f"{rng.randrange(100000):05d}"


def event(load: Load, device: str, seq: int, rng: random.Random, plate: str | None = None) -> bytes:
    now = datetime.now(UTC)
    if load.kind == "gas":
        return schemas.encode(GasReading(sensor_id=device, gas=GasType.COMBUSTIBLE, value=round(2.0 + rng.random(), 2),
                                         unit=GasUnit.LEL, measured_at=now, seq=seq))
    return schemas.encode(PlateRead(read_id=f"{device}-{seq}-{rng.getrandbits(32):08x}", checkpoint_id=device,
                                    camera_id=f"{device}-L1", lane=1, plate=plate or unlisted_plate(rng),
                                    plate_colour=PlateColour.BLUE, confidence=0.93, captured_at=now))


def generate(kind: str, port: int, rate: float, seconds: float, first: int, count: int, seed: int) -> None:
    """Publish events of ``kind`` for devices ``first..first+count`` at ``rate``/s for ``seconds``, at
    QoS 1 with at most 1,000 unacknowledged (``bench/mqtt_load``: the devices' CPU is not the pipeline's);
    print what was published and acknowledged."""
    load = LOADS[kind]
    rng = random.Random(seed)
    client = QoS1Publisher("127.0.0.1", port, f"bench-gen-{os.getpid()}")
    devices = [load.device_id(i) for i in range(first, first + count)]
    topics_of = [topics.device_topic(load.device_kind, d, load.message).encode() for d in devices]
    seq = [0] * count
    i = 0
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        n = min(int(rate * elapsed) - client.sent, 1000 - (client.sent - client.poll()))  # at most 1,000 unacked
        if n > 0:
            batch = []
            for _ in range(n):
                j = i % count
                batch.append((topics_of[j], event(load, devices[j], seq[j], rng)))
                seq[j] += 1
                i += 1
            client.publish(batch)
        time.sleep(0.005)
    took = time.monotonic() - start
    client.wait_acked(60)
    client.close()
    print(json.dumps({"published": client.sent, "acked": client.acked, "seconds": took}), flush=True)


class AlertWatch:
    """A probe's subscription to alerts on MQTT: the first arrival of each, by a key taken from it."""

    def __init__(self, port: int, topic_filter: str, key: Callable[[mqtt.MQTTMessage], str]) -> None:
        self.arrived: dict[str, float] = {}
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-probe-{os.getpid()}")
        self.client.max_inflight_messages_set(1000)

        self.arrived_wall: dict[str, float] = {}  # the same arrivals on the wall clock (the stage split)

        def on_message(c, u, m) -> None:
            k = key(m) if m.payload and not m.retain else None
            if k is not None and k not in self.arrived:
                self.arrived[k], self.arrived_wall[k] = time.monotonic(), time.time()

        self.client.on_message = on_message
        self.client.on_connect = lambda c, *a: c.subscribe(topic_filter, qos=1)
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        subscribed.wait(10)

    def report(self, sent: dict[str, float], sent_wall: dict[str, float] | None = None) -> None:
        """Wait (up to 30 s) for an alert for every key sent; print the latencies and how many never came
        (and, with ``sent_wall``, each key's publish and arrival on the wall clock)."""
        deadline = time.monotonic() + 30
        while not sent.keys() <= self.arrived.keys() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.client.disconnect()
        self.client.loop_stop()
        latencies = [self.arrived[k] - t for k, t in sent.items() if k in self.arrived]
        walls = {k: (t, self.arrived_wall[k]) for k, t in (sent_wall or {}).items() if k in self.arrived_wall}
        print(json.dumps({"latencies": latencies, "lost": len(sent) - len(latencies), "walls": walls}), flush=True)


def probe_latency(port: int, alarms: int, every_s: float, prefix: str) -> None:
    """Raise ``alarms`` gas alarms, one every ``every_s``, each on its own sensor; report the latency of
    each (publish of the raising reading -> the alert on MQTT)."""
    watch = AlertWatch(port, f"{topics.PREFIX}/alerts/gas-level-1/#", lambda m: m.topic.split("/")[4])
    sent: dict[str, float] = {}
    sent_wall: dict[str, float] = {}
    for i in range(alarms):
        sensor = f"{prefix}-{i:03d}"
        topic = topics.device_topic(DeviceKind.GAS, sensor, MessageKind.GAS_READING)
        now = datetime.now(UTC)
        for k, value in enumerate((30.0, 31.0)):
            payload = schemas.encode(GasReading(sensor_id=sensor, gas=GasType.COMBUSTIBLE, value=value,
                                                unit=GasUnit.LEL, measured_at=now - timedelta(seconds=10 - 10 * k),
                                                seq=k))
            if k == 1:
                time.sleep(0.05)
                sent[sensor], sent_wall[sensor] = time.monotonic(), time.time()
            watch.client.publish(topic, payload, qos=1)
        time.sleep(every_s)
    watch.report(sent, sent_wall)


def probe_hits(port: int, plates: list[str], every_s: float, checkpoint: str) -> None:
    """Read each listed plate at ``checkpoint``, one every ``every_s``; report the latency of each
    (publish of the read -> the watch-list alert on MQTT)."""
    watch = AlertWatch(port, f"{topics.PREFIX}/alerts/watchlist-vehicle/{checkpoint}/#",
                       lambda m: json.loads(m.payload)["details"]["plate_read"])
    load, rng, sent, sent_wall = LOADS["plates"], random.Random(5), {}, {}
    topic = topics.device_topic(DeviceKind.CAMERA, checkpoint, MessageKind.PLATE_READ)
    for seq, plate in enumerate(plates):
        payload = event(load, checkpoint, seq, rng, plate)
        sent[plate], sent_wall[plate] = time.monotonic(), time.time()
        watch.client.publish(topic, payload, qos=1)
        time.sleep(every_s)
    watch.report(sent, sent_wall)


# ---------------------------------------------------------------- measuring
def process_tree(pid: int) -> list[int]:
    """A process and its live descendants (the worker's image process and retro-hunter)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its live descendants (the worker's image process)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def core_wait_seconds(pid: int) -> float:
    """Seconds a process's main thread (the worker's event loop) was ready to run but waited for a
    core (``/proc/<pid>/task/<pid>/schedstat``: time on a core, time waiting, timeslices)."""
    try:
        return int(Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return math.nan


def pss_mib(pid: int) -> float:
    """Proportional set size of a process and its descendants, MiB (pages shared after fork counted
    once across them, unlike summing RSS)."""
    total = 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def in_influxdb(settings: Settings, load: Load, start: datetime, end: datetime) -> int:
    """The load's events stamped between ``start`` and ``end`` whose points are in InfluxDB."""
    import urllib.parse
    import urllib.request

    q = f"{load.influx_count} AND time >= '{start.isoformat()}' AND time <= '{end.isoformat()}'"
    url = f"http://127.0.0.1:{settings.services.influxdb_port}/query?" + urllib.parse.urlencode(
        {"db": settings.influx.bucket, "q": q})
    with urllib.request.urlopen(url, timeout=30) as resp:
        body = json.load(resp)
    series = body["results"][0].get("series", [])
    return int(series[0]["values"][0][1]) if series else 0


class Point(msgspec.Struct):
    measurement: str
    tags: dict[str, str] = {}


class SensorOf(msgspec.Struct):
    sensor_id: str


class TopicFollower:
    """A plain aiokafka consumer of ``topic_names`` from their end, in a thread of its own (started on
    construction, ready once it has its partitions): each batch goes to ``on_batch``."""

    topic_names: tuple[str, ...] = ()
    fetch_max_wait_ms = 500  # aiokafka's own
    fetch_min_bytes = 1  # aiokafka's own

    def __init__(self, settings: Settings) -> None:
        self.settings, self.stop, self.ready = settings, threading.Event(), threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.thread.start()
        self.ready.wait(30)

    async def _run(self) -> None:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(*self.topic_names, bootstrap_servers=self.settings.kafka.bootstrap,
                                    group_id=None, auto_offset_reset="latest",
                                    fetch_max_wait_ms=self.fetch_max_wait_ms, fetch_min_bytes=self.fetch_min_bytes)
        await consumer.start()
        self.ready.set()
        try:
            while not self.stop.is_set():
                self.on_batch(await consumer.getmany(timeout_ms=50, max_records=5000))
        finally:
            await consumer.stop()

    def on_batch(self, batch: dict) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)


class MetricRecords(TopicFollower):
    """The worker's metric points (one ``gas`` point per processed reading, one ``plate_reads`` point
    per processed plate read: the worker's output) as they arrive: their count is what the worker has
    processed, gaps in their arrival times are processing pauses (the worker sends its points at least
    every 0.2 s). Gas points are also told apart by the readings topic's partition of their sensor
    (Kafka's default partitioner, as ingest keys readings by sensor): while one worker restores a
    partition's state, the other workers' partitions go on, and only the partition's own gap shows it."""

    topic_names = (topics.KAFKA_METRICS,)

    def __init__(self, settings: Settings) -> None:
        self.times: dict[str, list[float]] = {"gas": [], "plate_reads": []}
        self.points: dict[str, int] = dict.fromkeys(self.times, 0)
        self.partitions = settings.kafka.partitions
        self.partition_of: dict[str, int] = {}
        self.partition_times: dict[int, list[float]] = {p: [] for p in range(self.partitions)}
        self.decode = msgspec.json.Decoder(list[Point]).decode
        super().__init__(settings)

    def _partition(self, sensor: str) -> int:
        p = self.partition_of.get(sensor)
        if p is None:
            p = self.partition_of[sensor] = partition_of(sensor.encode(), self.partitions)
        return p

    def on_batch(self, batch: dict) -> None:
        now = time.monotonic()
        for records in batch.values():
            for r in records:
                points = self.decode(r.value)
                for measurement in self.times:
                    n = sum(p.measurement == measurement for p in points)
                    if n:
                        self.points[measurement] += n
                        self.times[measurement].append(now)
                seen = {self._partition(p.tags["sensor_id"]) for p in points
                        if p.measurement == "gas" and "sensor_id" in p.tags}
                for partition in seen:
                    self.partition_times[partition].append(now)

    def longest_gap(self, since: float, until: float, measurement: str = "gas") -> float:
        return self._gap(self.times[measurement], since, until)

    def longest_partition_gap(self, since: float, until: float) -> float:
        """The longest time any one partition of the gas readings went without a processed reading."""
        return max(self._gap(ts, since, until) for ts in self.partition_times.values())

    def where_longest(self, since: float, until: float) -> str:
        """Which partition had the longest gap, and when it began and ended (s after ``since``)."""
        gaps = {p: self._gap_at(ts, since, until) for p, ts in self.partition_times.items()}
        p = max(gaps, key=lambda k: gaps[k][0])
        gap, start = gaps[p]
        return f"partition {p}, +{start - since:.1f} to +{start + gap - since:.1f} s"

    @staticmethod
    def _gap(times: list[float], since: float, until: float) -> float:
        return MetricRecords._gap_at(times, since, until)[0]

    @staticmethod
    def _gap_at(times: list[float], since: float, until: float) -> tuple[float, float]:
        ts = [since] + [t for t in times if since <= t <= until] + [until]
        return max((b - a, a) for a, b in zip(ts, ts[1:]))


class IngestedEvents(TopicFollower):
    """Ingest's output: the events in the loads' Kafka topics since this follower started, counted by
    event (a gas record may be a pack of readings: ``bench.kafka_events.events_in``)."""

    topic_names = tuple(topics.KAFKA_TOPICS[load.message] for load in LOADS.values())
    fetch_max_wait_ms, fetch_min_bytes = 250, 1024 * 1024  # a few fetches a second: light on Kafka

    def __init__(self, settings: Settings) -> None:
        self.events: dict[str, int] = dict.fromkeys(self.topic_names, 0)
        super().__init__(settings)

    def on_batch(self, batch: dict) -> None:
        for tp, records in batch.items():
            self.events[tp.topic] += sum(events_in(r.value) for r in records)


class KafkaStamps(TopicFollower):
    """Where a probe's alert's time goes: the Kafka timestamps (set by each producer when it sends) of
    the probe's raising events (sent by ingest) and of their alerts (sent by the worker), from a plain
    aiokafka consumer in its own thread, by the probe's key for each (a gas sensor, a plate). The same
    consumer's own delay for those events (ingest's send -> it has them) is the baseline for the
    worker's stage: the part of it that is Kafka's and the producer's, not the worker's. Subclasses
    say which records are the probe's (``on_batch``: ``event`` and ``alerted``)."""

    fetch_max_wait_ms = 50  # and aiokafka's fetch_min_bytes of 1: a record is fetched the moment it is there

    def __init__(self, settings: Settings) -> None:
        self.reading: dict[str, float] = {}  # key -> its latest event's timestamp (the raising one)
        self.fetched: dict[str, float] = {}  # key -> when this consumer had that event (wall clock)
        self.alert: dict[str, float] = {}  # key -> its first alert's timestamp
        self.plain: list[float] = []  # ingest's send -> this consumer has it, for each of the probe's events
        super().__init__(settings)

    def event(self, key: str, timestamp_ms: int) -> None:
        now = time.time()
        self.reading[key], self.fetched[key] = timestamp_ms / 1000, now
        self.plain.append(now - timestamp_ms / 1000)

    def alerted(self, key: str, timestamp_ms: int) -> None:
        self.alert.setdefault(key, timestamp_ms / 1000)

    def rows(self, walls: dict[str, tuple[float, float]]) -> list[dict]:
        """Per alert: when its event was published (wall clock) and its three stages, in seconds; and
        when a plain consumer had the raising event (``plain``: the part of the worker's stage before
        any consumer could have had it)."""
        return [{"key": key, "published": published, "ingest": self.reading[key] - published,
                 "worker": self.alert[key] - self.reading[key], "alert service": arrived - self.alert[key],
                 "plain": self.fetched[key] - self.reading[key]}
                for key, (published, arrived) in sorted(walls.items(), key=lambda kv: kv[1][0])
                if key in self.reading and key in self.alert]

    def stages(self, walls: dict[str, tuple[float, float]]) -> dict[str, list[float]]:
        """Per alert (publish, arrival on MQTT: wall clock): the time to ingest's send, from there to
        the worker's send of the alert, and from there to the alert on MQTT, in seconds."""
        out: dict[str, list[float]] = {"ingest": [], "worker": [], "alert service": []}
        for row in self.rows(walls):
            for stage in out:
                out[stage].append(row[stage])
        out["(baseline: a plain consumer has the event)"] = self.plain  # what the worker's stage is above
        return out


class GasStamps(KafkaStamps):
    """The gas probe's alarms: its raising readings (ingest sends them urgent, maybe one earlier reading
    of the sensor routine, maybe in a pack) and their gas-level-1 alerts, for the sensors that start
    with ``prefix``."""

    topic_names = (topics.KAFKA_TOPICS[MessageKind.GAS_READING], topics.KAFKA_URGENT[MessageKind.GAS_READING],
                   topics.KAFKA_ALERTS)

    def __init__(self, settings: Settings, prefix: str) -> None:
        self.prefix, self.prefix_s, self.level1 = prefix.encode(), prefix, b"gas-level-1:" + prefix.encode()
        self.sensor_of = msgspec.json.Decoder(SensorOf).decode
        super().__init__(settings)

    def on_batch(self, batch: dict) -> None:
        raw, urgent, alerts = self.topic_names
        for tp, records in batch.items():
            for r in records:
                key = r.key or b""
                if tp.topic in (raw, urgent):  # the probe's raising readings are urgent (ingest's Urgency)
                    for sensor in self._probed(r):
                        self.event(sensor, r.timestamp)
                elif tp.topic == alerts and key.startswith(self.level1):
                    self.alerted(key.decode().split(":", 1)[1], r.timestamp)

    def _probed(self, record) -> list[str]:
        """The probe's sensors a readings record is for: its key, or a pack's sensors (ingest's packs
        have no key)."""
        if record.key is not None:
            return [record.key.decode()] if record.key.startswith(self.prefix) else []
        if self.prefix not in (record.value or b""):
            return []
        return [s for v in schemas.unpack(record.value) if (s := self.sensor_of(v).sensor_id).startswith(self.prefix_s)]


class PlateOf(msgspec.Struct):
    plate: str


class HitOf(msgspec.Struct):
    details: dict


class HitStamps(KafkaStamps):
    """The hit probe's reads (ingest keys plate reads by checkpoint) at ``checkpoint`` and their live
    watch-list alerts (keyed ``watch:<entry>:<checkpoint>:<subject>``), by the plate read."""

    topic_names = (topics.KAFKA_TOPICS[MessageKind.PLATE_READ], topics.KAFKA_ALERTS)

    def __init__(self, settings: Settings, checkpoint: str) -> None:
        self.checkpoint, self.place = checkpoint.encode(), f":{checkpoint}:".encode()
        self.plate_of, self.hit_of = msgspec.json.Decoder(PlateOf).decode, msgspec.json.Decoder(HitOf).decode
        super().__init__(settings)

    def on_batch(self, batch: dict) -> None:
        reads, alerts = self.topic_names
        for tp, records in batch.items():
            for r in records:
                key = r.key or b""
                if tp.topic == reads and key == self.checkpoint:
                    self.event(self.plate_of(r.value).plate, r.timestamp)
                elif tp.topic == alerts and key.startswith(b"watch:") and self.place in key:
                    self.alerted(self.hit_of(r.value).details["plate_read"], r.timestamp)


def child(role: str, *args: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bench.pipeline_bench", "--role", role, *map(str, args)],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True)


def result_of(proc: subprocess.Popen, timeout: float = 300) -> dict:
    out, _ = proc.communicate(timeout=timeout)
    return json.loads(out.strip().splitlines()[-1])


@dataclass
class Step:
    rate: float
    published: int
    seconds: float
    processed: dict[str, int]
    cpu: dict[str, float]
    drained: bool

    def stage_rate(self, stage: str) -> float:
        return self.processed[stage] / (self.seconds + GRACE_S) if self.processed[stage] < self.published \
            else self.published / self.seconds

    def kept_up(self, stage: str) -> bool:
        return self.processed[stage] >= self.published


@dataclass
class Bench:
    settings: Settings
    env: dict[str, str]
    sensors: int
    checkpoints: int = 0
    procs: dict[str, PipelineProcess] = field(default_factory=dict)
    servers: list = field(default_factory=list)
    records: MetricRecords | None = None
    ingested: IngestedEvents | None = None

    def pids(self) -> dict[str, int]:
        out = {name: p.pid for name, p in self.procs.items() if p.pid}
        for s in self.servers:
            if (pid := s.pid()) is not None:
                out[s.name] = pid
        return out

    def positions(self, load: Load) -> dict[str, int]:
        assert self.records is not None and self.ingested is not None
        return {"ingest": self.ingested.events[topics.KAFKA_TOPICS[load.message]],
                "worker": self.records.points[load.measurement]}

    def devices(self, load: Load) -> int:
        return self.sensors if load.kind == "gas" else self.checkpoints

    def offer(self, rate: float, seconds: float, seed: int, load: Load = LOADS["gas"]) -> Step:
        """Offer ``rate`` events/s for ``seconds``; measure every stage up to GRACE_S after."""
        n = max(1, math.ceil(rate / PER_GENERATOR))
        before, pids = self.positions(load), self.pids()
        cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        share = self.devices(load) // n
        started = datetime.now(UTC)
        gens = [child("generate", load.kind, self.settings.mqtt.port, rate / n, seconds, k * share, share,
                      seed * 100 + k) for k in range(n)]
        results = [result_of(g) for g in gens]
        published = sum(r["published"] for r in results)
        took = max(r["seconds"] for r in results)
        deadline = time.monotonic() + GRACE_S
        while True:
            now = {k: v - before[k] for k, v in self.positions(load).items()}
            if min(now["ingest"], now["worker"]) >= published or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        cpu = {name: (cpu_seconds(pid) - cpu0[name]) / max(published, 1) for name, pid in pids.items()}
        now["metrics"] = in_influxdb(self.settings, load, started, datetime.now(UTC))
        drained = self.wait_drained(load, published, before, 180)
        return Step(rate, published, took, now, cpu, drained)

    def wait_drained(self, load: Load, published: int, before: dict[str, int], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self.positions(load)
            if min(now["ingest"] - before["ingest"], now["worker"] - before["worker"]) >= published:
                return True
            time.sleep(0.5)
        return False


def spread(xs: list[float], fmt: str = "{:,.0f}") -> str:
    return f"{fmt.format(statistics.median(xs))} ({fmt.format(min(xs))}-{fmt.format(max(xs))})"


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, math.ceil(q * len(xs)) - 1))]


def write_registry(path: Path, sensors: int, alarm_sensors: list[str], checkpoints: int, probes: int) -> None:
    import yaml

    devices = [{"id": f"{GAS}-{i:05d}", "kind": "gas", "interval_s": 3600, "site": f"site-{i // 20}",
                "district": f"d{i % 16}"} for i in range(sensors)]
    devices += [{"id": s, "kind": "gas", "interval_s": 3600, "site": f"alarm-{s}"} for s in alarm_sensors]
    devices += [{"id": LOADS["plates"].device_id(i), "kind": "camera", "district": f"d{i % 16}"}
                for i in range(checkpoints)]
    devices += [{"id": f"{PROBE_CP}-{r}", "kind": "camera"} for r in range(probes + 1)]
    path.write_text(yaml.safe_dump({"devices": devices}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sensors", type=int, default=20000)
    parser.add_argument("--rates", default="500,1000,2000,4000")
    parser.add_argument("--step-s", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--alarms", type=int, default=200, help=f"alarms (and hits) per latency run, one every {PROBE_EVERY_S} s")
    parser.add_argument("--parts", default="rates,latency,rebalance,plates,scaling,memory",
                        help="what to measure (comma-separated)")
    parser.add_argument("--half", type=float, metavar="RATE", help="the rate of the latency and rebalance runs, "
                        "without the rising rates unless --parts has them too (default: half the sustained rate)")
    parser.add_argument("--checkpoints", type=int, default=500)
    parser.add_argument("--watchlist", type=int, default=1_000_000, help="vehicle entries on the list")
    parser.add_argument("--plate-rates", default="500,1000,2000,3000")
    parser.add_argument("--plate-half", type=float, metavar="RATE", help="the rate of the watch-list hit and "
                        "re-import runs, without the plate reads' rising rates (default: half their sustained rate)")
    parser.add_argument("--dump", type=Path, metavar="FILE", help="write each gas alarm's and watch-list hit's "
                        "stages (publish time, then ingest, worker, alert service, in seconds) as JSON lines, to "
                        "look at the tail")
    parser.add_argument("--set", action="append", default=[], metavar="SAFECITY_X=V",
                        help="a setting for the pipeline's processes (e.g. to measure a default against an old value)")
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "generate":
        kind, port, rate, seconds, first, count, seed = args.args
        generate(kind, int(port), float(rate), float(seconds), int(first), int(count), int(seed))
        return
    if args.role == "hits":
        port, every_s, checkpoint, *listed = args.args
        probe_hits(int(port), listed, float(every_s), checkpoint)
        return
    if args.role == "latency":
        port, alarms, every_s, prefix = args.args
        probe_latency(int(port), int(alarms), float(every_s), prefix)
        return
    if args.role == "subscribe":
        from bench.ingest_bench import subscriber

        subscriber("127.0.0.1", int(args.args[0]), int(args.args[1]))
        return

    run_dir = Path(tempfile.mkdtemp(prefix="safecity-pbench-"))
    latency_runs = args.repeat
    alarm_prefixes = [f"{ALARM}-{r}" for r in range(latency_runs)]
    alarm_sensors = [f"{p}-{i:03d}" for p in alarm_prefixes for i in range(args.alarms)]
    registry = run_dir / "registry.yaml"
    run_dir.mkdir(exist_ok=True)
    write_registry(registry, args.sensors, alarm_sensors, args.checkpoints, args.repeat)
    env = services.isolated_env(run_dir) | {"SAFECITY_LOG_LEVEL": "INFO", "SAFECITY_REGISTRY": str(registry),
                                            "SAFECITY_WORKER__DATA_DIR": str(run_dir / "worker")}
    env |= dict(kv.split("=", 1) for kv in args.set)
    os.environ.update(env)
    settings = Settings()
    bench = Bench(settings, env, args.sensors, args.checkpoints)
    bench.servers = services.start_all(settings)
    asyncio.run(ensure_topics(settings.kafka))
    print(f"# pipeline bench: {args.sensors} gas sensors, {os.cpu_count()} cores, steps of {args.step_s:.0f} s, "
          f"median of {args.repeat} runs (range)" + "".join(f"; {kv}" for kv in args.set), flush=True)
    try:
        for name in ("ingest", "alerter", "metrics", "worker"):
            bench.procs[name] = PipelineProcess([name], env, run_dir / f"{name}.log", READY[name]).start(180)
        bench.records, bench.ingested = MetricRecords(settings), IngestedEvents(settings)
        warm = bench.offer(200, 3, seed=1)  # warm up: every stage has seen readings
        if not warm.drained:
            raise SystemExit("the pipeline did not process the warm-up readings")

        # as many publisher processes as the gas ladder's highest step has generators (the same work)
        top = max(float(r) for r in args.rates.split(","))
        publishers = max(1, math.ceil(top / PER_GENERATOR))
        ceilings = [baseline(settings, payloads(20000, "bench-base"), publishers) for _ in range(args.repeat)]
        print(f"ceiling: plain MQTT QoS 1, {publishers} publisher process(es) -> Mosquitto -> subscriber: "
              f"{spread(ceilings)} msg/s", flush=True)

        parts = set(args.parts.split(","))
        if parts & {"rates", "latency", "rebalance"}:
            sustained = gas_rates(bench, args, ceilings) if "rates" in parts or not args.half else 0.0
            half = args.half or sustained / 2
            if "latency" in parts:
                timed_under_load(bench, args, "gas", half, 900, lambda r: [
                    "latency", settings.mqtt.port, args.alarms, PROBE_EVERY_S, alarm_prefixes[r]], "gas alert latency",
                    lambda r: GasStamps(settings, alarm_prefixes[r] + "-"))
            if "rebalance" in parts:
                rebalance(bench, run_dir, args, half)
        if "scaling" in parts:  # before the plates: a new worker would first load their million-entry list
            scaling(bench, run_dir, args)
        if "memory" in parts:  # before the plates too: its baseline is a worker with empty lists
            memory(bench, run_dir, args)
        if "plates" in parts:
            measure_plates(bench, run_dir, args)
    finally:
        for follower in (bench.records, bench.ingested):
            if follower is not None:
                follower.close()
        for proc in bench.procs.values():
            proc.stop()
        for server in reversed(bench.servers):
            server.stop()


OFFERED_SHARE = 0.95


def ladder(bench: Bench, args: argparse.Namespace, rates: str, load: Load, seed: int,
           label: str) -> tuple[float, list[Step]]:
    """Offer each rate ``--repeat`` times, rising, until ingest and the worker no longer keep up in
    most runs; the highest rate they kept up with, and its runs (0 and none if none). A run keeps up
    only if the generators published at least ``OFFERED_SHARE`` of the rate: QoS 1 with a bounded
    window, they publish less when the broker and ingest acknowledge more slowly (or the cores are
    full), and processing all of less is not keeping up with the rate."""
    sustained, at = 0.0, []
    for rate in (float(r) for r in rates.split(",")):
        runs = [bench.offer(rate, args.step_s, seed=int(rate) + seed + k, load=load) for k in range(args.repeat)]
        kept = sum(s.published >= OFFERED_SHARE * rate * s.seconds and all(s.kept_up(st) for st in ("ingest", "worker"))
                   for s in runs)
        print(f"{label} offered {rate:,.0f}/s: published {spread([s.published / s.seconds for s in runs])}/s; "
              + "; ".join(f"{st} {spread([s.stage_rate(st) for s in runs])}/s" for st in ("ingest", "worker",
                                                                                        "metrics"))
              + f"; kept up in {kept} of {len(runs)}", flush=True)
        if kept * 2 <= len(runs):
            break
        sustained, at = rate, runs
    return sustained, at


def gas_rates(bench: Bench, args: argparse.Namespace, ceilings: list[float]) -> float:
    """Rising rates of gas readings; the sustained rate, with CPU per reading there."""
    sustained, at = ladder(bench, args, args.rates, LOADS["gas"], 0, "gas readings")
    if not sustained:
        raise SystemExit("the pipeline kept up with none of the offered rates")
    print(f"\nsustained end to end: {sustained:,.0f} readings/s "
          f"(ratio to the MQTT ceiling {sustained / statistics.median(ceilings):.2f})")
    print("CPU per reading at that rate, ms (median of runs, range):")
    for name in at[0].cpu:
        print(f"  {name:10s} {spread([s.cpu[name] * 1000 for s in at], '{:.3f}')}")
    print(f"  {'total':10s} {spread([sum(s.cpu.values()) * 1000 for s in at], '{:.3f}')}", flush=True)
    return sustained


def timed_under_load(bench: Bench, args: argparse.Namespace, kind: str, rate: float, seed: int,
                     probe: Callable[[int], list], what: str,
                     stamps_of: Callable[[int], KafkaStamps] | None = None) -> None:
    """The generator offers ``rate`` events/s of ``kind`` while a probe process (``probe(r)``: its
    role and arguments for run r) times its alerts; p50, p95 and p99 per run, median with range.
    With ``stamps_of`` (run r's follower of the probe's events and alerts in Kafka), the same split by
    stage."""
    settings = bench.settings
    p: dict[float, list[float]] = {q: [] for q in (0.5, 0.95, 0.99)}
    split: dict[str, dict[float, list[float]]] = {}
    waits: list[float] = []  # per run: the share of the probe's time the worker's loop waited for a core
    lost = 0
    for r in range(args.repeat):
        stamps = stamps_of(r) if stamps_of else None
        seconds = LOAD_SETTLE_S + args.alarms * (PROBE_EVERY_S + 0.05) + 3
        gen = child("generate", kind, settings.mqtt.port, rate, seconds, 0, bench.devices(LOADS[kind]), seed + r)
        time.sleep(LOAD_SETTLE_S)
        worker, t0 = bench.procs["worker"].pid, time.monotonic()
        waited0 = core_wait_seconds(worker)
        got = result_of(child(*probe(r)))
        waits.append((core_wait_seconds(worker) - waited0) / (time.monotonic() - t0) * 100)
        result_of(gen)
        lost += got["lost"]
        for q in p:
            p[q].append(percentile(got["latencies"], q) * 1000)
        if stamps is not None:
            stamps.close()
            if args.dump:
                with args.dump.open("a") as out:
                    for row in stamps.rows(got["walls"]):
                        out.write(json.dumps({"what": what, "rate": rate, "run": r, **row}) + "\n")
            for stage, xs in stamps.stages(got["walls"]).items():
                for q in (0.5, 0.99):
                    split.setdefault(stage, {}).setdefault(q, []).append(percentile(xs, q) * 1000 if xs else math.nan)
    print(f"\n{what} at {rate:,.0f} events/s (publish -> alert on MQTT), ms, {args.alarms} per run, "
          f"{lost} never arrived:")
    print("  " + "; ".join(f"p{round(q * 100)} {spread(v, '{:.0f}')}" for q, v in p.items()), flush=True)
    for stage, qs in split.items():  # each stage's own percentiles: they do not add up to the whole's
        label = stage if stage.startswith("(") else f"of which {stage}"
        print(f"  {label:22s} " + "; ".join(f"p{round(q * 100)} {spread(v, '{:.0f}')}" for q, v in qs.items()),
              flush=True)
    print(f"  the worker's loop thread was ready to run but waited for a core {spread(waits, '{:.0f}')} % of the "
          "time (its scheduler statistics: the cores are full when this is high)", flush=True)


RESTORED = "[^---Recovery]: Worker ready"  # a worker's line once its partitions' state is restored


def rebalance(bench: Bench, run_dir: Path, args: argparse.Namespace, half: float) -> None:
    """A second worker joins, then leaves, while the generator offers ``half`` readings/s."""
    settings, env, records = bench.settings, bench.env, bench.records
    joins, leaves, part_joins, part_leaves = [], [], [], []
    where: list[str] = []
    for r in range(args.repeat):
        gen = child("generate", "gas", settings.mqtt.port, half, 300, 0, args.sensors, 700 + r)  # stopped below
        time.sleep(10)
        log = run_dir / f"worker-2-{r}.log"
        second = PipelineProcess(["worker"], env | {"SAFECITY_WORKER__DATA_DIR": str(run_dir / f"worker-2-{r}")},
                                 log, READY["worker"])
        joined = time.monotonic()
        second.start(120)
        # until the new worker has restored its partitions' state (it then processes them), and 5 s more
        while RESTORED not in log.read_text(errors="replace") and time.monotonic() < joined + 200:
            time.sleep(0.5)
        time.sleep(max(5.0, joined + 30 - time.monotonic()))
        joins.append(records.longest_gap(joined, time.monotonic()))
        part_joins.append(records.longest_partition_gap(joined, time.monotonic()))
        where.append(f"run {r} joins: {records.where_longest(joined, time.monotonic())}")
        left = time.monotonic()
        second.stop()
        time.sleep(max(0.0, left + 25 - time.monotonic()))
        leaves.append(records.longest_gap(left, time.monotonic()))
        part_leaves.append(records.longest_partition_gap(left, time.monotonic()))
        where.append(f"run {r} leaves: {records.where_longest(left, time.monotonic())}")
        os.killpg(gen.pid, signal.SIGTERM)
        gen.wait(30)
    print(f"\nrebalance at {half:,.0f} readings/s, longest time without a processed reading, s: "
          f"worker joins {spread(joins, '{:.1f}')}; worker leaves {spread(leaves, '{:.1f}')}")
    print(f"  the same for any one partition of the readings (those that moved wait for their new owner's "
          f"restore): worker joins {spread(part_joins, '{:.1f}')}; worker leaves {spread(part_leaves, '{:.1f}')}",
          flush=True)
    print("  the longest, from the second worker's start or stop: " + "; ".join(where), flush=True)


def scaling(bench: Bench, run_dir: Path, args: argparse.Namespace) -> None:
    """The gas ladder again with a second worker in the group (its CPU counted with the rest)."""
    second = PipelineProcess(["worker"], bench.env | {"SAFECITY_WORKER__DATA_DIR": str(run_dir / "worker-scaling")},
                             run_dir / "worker-scaling.log", READY["worker"])
    second.start(120)
    bench.procs["worker-2"] = second
    try:
        time.sleep(15)  # the rebalance and the new worker's table recovery are over
        warm = bench.offer(200, 3, seed=5)
        if not warm.drained:
            print("\nscaling: two workers did not process the warm-up readings", flush=True)
            return
        print("\nscaling: a second worker process in the group", flush=True)
        sustained, at = ladder(bench, args, args.rates, LOADS["gas"], 300, "gas readings, 2 workers")
        print(f"sustained end to end with 2 workers: {sustained:,.0f} readings/s")
        if at:
            print("CPU per reading at that rate, ms (median of runs, range):")
            for name in at[0].cpu:
                print(f"  {name:10s} {spread([s.cpu[name] * 1000 for s in at], '{:.3f}')}")
            print(f"  {'total':10s} {spread([sum(s.cpu.values()) * 1000 for s in at], '{:.3f}')}", flush=True)
    finally:
        bench.procs.pop("worker-2", None)
        second.stop()


def fresh_worker_memory(bench: Bench, run_dir: Path, name: str, lists_loaded: bool) -> float:
    """A new worker process (its own data directory) joins, loads the watch lists from their topics
    (it logs when it has), settles, and its memory is read; then it stops."""
    log = run_dir / f"{name}.log"
    proc = PipelineProcess(["worker"], bench.env | {"SAFECITY_WORKER__DATA_DIR": str(run_dir / name)}, log,
                           "watch lists loaded").start(900)
    try:
        if lists_loaded:
            line = next(x for x in log.read_text(errors="replace").splitlines() if "watch lists loaded" in x)
            print(f"    {line.split('watch lists loaded')[1].strip(': ')}", flush=True)
        time.sleep(20)  # the rebalance, the first check timers, a collection
        return pss_mib(proc.pid)
    finally:
        proc.stop()


def listed_persons(n: int, seed: int) -> list[tuple[str, str, str]]:
    """``n`` distinct people: (name, valid 18-digit ID number, birth date)."""
    from models.identity import id_check_character

    rng, out, seen = random.Random(seed), [], set()
    surnames, given = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗", "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"
    while len(out) < n:
        born = date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 55))
        first17 = f"{rng.choice(('110105', '310104', '440106', '320102'))}{born:%Y%m%d}{rng.randrange(1000):03d}"
        if first17 in seen:
            continue
        seen.add(first17)
        name = rng.choice(surnames) + "".join(rng.choice(given) for _ in range(rng.choice((1, 2))))
        out.append((name, first17 + id_check_character(first17), born.isoformat()))
    return out


def memory(bench: Bench, run_dir: Path, args: argparse.Namespace) -> None:
    """Worker memory (PSS of the worker and its children) with empty watch lists and with
    ``--watchlist`` vehicles plus as many persons, each on a fresh worker, ``--repeat`` times each."""
    env, n = bench.env, args.watchlist
    print(f"\nworker memory: fresh workers, empty lists against {n:,} vehicles + {n:,} persons", flush=True)
    main = bench.procs.pop("worker")
    main.stop()
    try:
        empty = [fresh_worker_memory(bench, run_dir, f"worker-mem-e{r}", False) for r in range(args.repeat)]
        import_list(env, run_dir / "mem-vehicles.csv", listed_plates(n, seed=11), "stolen-vehicle")
        path = run_dir / "mem-persons.csv"
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("entry_id,name,id_number,birth_date_from,birth_date_to,category,priority,valid_from,valid_until\n")
            for i, (name, number, born) in enumerate(listed_persons(n, seed=12)):
                fh.write(f"p{i},{name},{number},{born},{born},wanted-person,2,,\n")
        subprocess.run([sys.executable, "-m", "safecity.cli", "watchlist", "publish", str(path), "--kind", "persons",
                        "--by", "bench"], env=env, cwd=ROOT, check=True, capture_output=True)
        loaded = [fresh_worker_memory(bench, run_dir, f"worker-mem-l{r}", True) for r in range(args.repeat)]
    finally:
        bench.procs["worker"] = PipelineProcess(["worker"], env, run_dir / "worker.log", READY["worker"]).start(900)
    extra = [b - a for a, b in zip(empty, loaded)]
    print(f"worker memory (PSS, MiB), empty lists: {spread(empty)}; with {n:,} + {n:,} entries: {spread(loaded)}; "
          f"the lists' share: {spread(extra)} MiB; ratio {statistics.median(loaded) / statistics.median(empty):.1f}",
          flush=True)


def listed_plates(n: int, seed: int) -> list[str]:
    """``n`` distinct new-energy plates (a six-character serial: D or F, then five digits)."""
    rng, out = random.Random(seed), set()
    while len(out) < n:
        out.add(rng.choice("京沪粤苏浙鲁川鄂湘豫") + rng.choice("ABCDEFGHJK") + rng.choice("DF") + f"{rng.randrange(100000):05d}")
    return sorted(out)


def import_list(env: dict[str, str], path: Path, plates: list[str], category: str) -> float:
    """Write the list and import it with the CLI (as an operator would); the seconds it took."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("entry_id,plate,category,priority,valid_from,valid_until\n")
        for i, plate in enumerate(plates):
            fh.write(f"v{i},{plate},{category},2,,\n")
    t = time.monotonic()
    subprocess.run([sys.executable, "-m", "safecity.cli", "watchlist", "publish", str(path), "--kind", "vehicles",
                    "--by", "bench"], env=env, cwd=ROOT, check=True, capture_output=True)  # what the API runs
    return time.monotonic() - t


def measure_plates(bench: Bench, run_dir: Path, args: argparse.Namespace) -> None:
    """Plate reads against a ``--watchlist``-entry list: import, sustained rate, hit latency, and the
    longest pause in live matching while the whole list is re-imported with every entry changed."""
    settings, env, load = bench.settings, bench.env, LOADS["plates"]
    listed = listed_plates(args.watchlist, seed=11)
    took = import_list(env, run_dir / "vehicles.csv", listed, "stolen-vehicle")
    print(f"\nwatch list: {len(listed):,} vehicles imported in {took:.0f} s", flush=True)
    t, k = time.monotonic(), 0
    while True:  # the whole list is live once the worker's replica holds its last entry
        probe = child("hits", settings.mqtt.port, 0, f"{PROBE_CP}-{args.repeat}", listed[-1])  # no hit, no cooldown
        if not result_of(probe)["lost"]:
            break
        k += 1
        if time.monotonic() - t > 900:
            raise SystemExit("the worker never matched the list's last plate")
    print(f"the worker matched the list's last plate {time.monotonic() - t:.0f} s after the import", flush=True)

    if args.plate_half:
        half = args.plate_half
    else:
        sustained, at = ladder(bench, args, args.plate_rates, load, 50, "plate reads")
        if not sustained:
            return
        print(f"sustained plate reads end to end against {len(listed):,} entries: {sustained:,.0f}/s; CPU per "
              f"read, all processes: {spread([sum(s.cpu.values()) * 1000 for s in at], '{:.3f}')} ms (worker "
              f"{spread([s.cpu['worker'] * 1000 for s in at], '{:.3f}')} ms)", flush=True)
        half = sustained / 2
    timed_under_load(bench, args, "plates", half, 300, lambda r: [
        "hits", settings.mqtt.port, PROBE_EVERY_S, f"{PROBE_CP}-{r}", *listed[100 + r * args.alarms: 100 + (r + 1) * args.alarms]],
        "watch-list hit latency", lambda r: HitStamps(settings, f"{PROBE_CP}-{r}"))

    pauses, imports = [], []
    for r in range(args.repeat):
        gen = child("generate", "plates", settings.mqtt.port, half, 240, 0, args.checkpoints, 400 + r)
        time.sleep(5)
        started = time.monotonic()
        imports.append(import_list(env, run_dir / f"vehicles-{r}.csv", listed,
                                   "wanted-vehicle" if r % 2 == 0 else "stolen-vehicle"))  # every entry changed
        time.sleep(30)
        pauses.append(bench.records.longest_gap(started, time.monotonic(), "plate_reads"))
        gen.kill()
        gen.wait()
    print(f"re-importing all {len(listed):,} entries (each changed) at {half:,.0f} plate reads/s: import "
          f"{spread(imports, '{:.0f}')} s; longest time without a processed plate read from its start to 30 s after "
          f"{spread(pauses, '{:.1f}')} s", flush=True)


if __name__ == "__main__":
    main()
