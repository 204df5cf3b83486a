"""The whole pipeline's cost per event, on the real servers, against the plain Mosquitto ceiling.

    python -m bench.pipeline_bench [--sensors 20000] [--rates 500,1000,2000,4000] [--step-s 10] [--repeat 3]

Starts its own Mosquitto, Kafka and InfluxDB on free loopback ports, and the real ingest, worker,
alert service and metrics writer (SQLite alert store), all stopped by PID at the end. A load
generator in separate processes (paho, QoS 1, at most 1,000 unacknowledged messages each) publishes
gas readings for ``--sensors`` registered sensors at each offered rate for ``--step-s`` seconds;
then it prints, each figure the median of ``--repeat`` runs with its range (min-max):

- **Ceiling**: plain MQTT QoS 1, publisher and subscriber in separate processes (the baseline).
- **Sustained rate per stage**: for each offered rate, what ingest (readings in Kafka), the worker
  (its metric points in Kafka) and the metrics writer (the readings' points in InfluxDB) had done by
  5 s after the generators stopped, per second of offer; a stage keeps up when it processed
  everything offered. The sustained rate is the highest offered rate that ingest and the worker kept
  up with in most runs.
- **CPU per reading** of every process (ingest, worker with its image process, alert service,
  metrics writer, Kafka, Mosquitto, InfluxDB and its adapter) at the highest rate all kept up with.
- **Alert latency** at half that rate: a probe process raises gas alarms on sensors of its own
  (two readings over the first level) and times each from the publish of the reading that raises
  it to the alert on MQTT (published by the alert service); p50, p95, p99 per run.
- **Rebalance pause**: at half load a second worker joins, later leaves; the longest time without
  a processed reading (the worker's metric records) after each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import paho.mqtt.client as mqtt

from bench.ingest_bench import baseline, payloads
from deploy import services
from deploy.kafka_topics import ensure_topics
from deploy.processes import READY, ROOT, PipelineProcess
from models import schemas, topics
from models.schemas import GasReading, GasType, GasUnit
from models.settings import Settings
from models.topics import DeviceKind, MessageKind

GAS = "bench-gas"
ALARM = "bench-alarm"
PER_GENERATOR = 4000  # msg/s one generator process is asked for at most
GRACE_S = 5.0


# ---------------------------------------------------------------- child processes
def generate(port: int, rate: float, seconds: float, first: int, count: int, seed: int) -> None:
    """Publish gas readings for sensors ``first..first+count`` at ``rate``/s for ``seconds``; print
    what was published and acknowledged."""
    rng = random.Random(seed)
    acked = [0]
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-gen-{os.getpid()}")
    client.max_inflight_messages_set(1000)
    client.on_publish = lambda *a: acked.__setitem__(0, acked[0] + 1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    sensors = [f"{GAS}-{i:05d}" for i in range(first, first + count)]
    topics_of = [topics.device_topic(DeviceKind.GAS, s, MessageKind.GAS_READING) for s in sensors]
    seq = [0] * count
    sent, i = 0, 0
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(rate * elapsed)
        while sent < due and sent - acked[0] < 1000:  # at most 1,000 unacknowledged
            j = i % count
            client.publish(topics_of[j], schemas.encode(GasReading(
                sensor_id=sensors[j], gas=GasType.COMBUSTIBLE, value=round(2.0 + rng.random(), 2), unit=GasUnit.LEL,
                measured_at=datetime.now(UTC), seq=seq[j])), qos=1)
            seq[j] += 1
            sent, i = sent + 1, i + 1
        time.sleep(0.005)
    took = time.monotonic() - start
    deadline = time.monotonic() + 60
    while acked[0] < sent and time.monotonic() < deadline:
        time.sleep(0.01)
    client.disconnect()
    client.loop_stop()
    print(json.dumps({"published": sent, "acked": acked[0], "seconds": took}), flush=True)


def probe_latency(port: int, alarms: int, every_s: float, prefix: str) -> None:
    """Raise ``alarms`` gas alarms, one every ``every_s``, each on its own sensor; print the latencies
    (publish of the raising reading -> the alert on MQTT) and how many never arrived."""
    arrived: dict[str, float] = {}
    subscribed = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-probe-{os.getpid()}")
    client.max_inflight_messages_set(1000)

    def on_message(c, u, m) -> None:
        if m.payload and not m.retain:
            device = m.topic.split("/")[4]
            arrived.setdefault(device, time.monotonic())

    client.on_message = on_message
    client.on_connect = lambda c, *a: c.subscribe(f"{topics.PREFIX}/alerts/gas-level-1/#", qos=1)
    client.on_subscribe = lambda *a: subscribed.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    subscribed.wait(10)
    sent: dict[str, float] = {}
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
                sent[sensor] = time.monotonic()
            client.publish(topic, payload, qos=1)
        time.sleep(every_s)
    deadline = time.monotonic() + 30
    while len(arrived) < alarms and time.monotonic() < deadline:
        time.sleep(0.05)
    client.disconnect()
    client.loop_stop()
    latencies = [arrived[s] - t for s, t in sent.items() if s in arrived]
    print(json.dumps({"latencies": latencies, "lost": alarms - len(latencies)}), flush=True)


# ---------------------------------------------------------------- measuring
def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its live descendants (the worker's image process)."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
        todo += children.get(p, [])
    return total


async def _in_kafka(settings: Settings) -> int:
    """Readings in Kafka: ingest's output."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap, group_id=None)
    await consumer.start()
    try:
        parts = [TopicPartition(topics.KAFKA_TOPICS[MessageKind.GAS_READING], p) for p in range(settings.kafka.partitions)]
        return sum((await consumer.end_offsets(parts)).values())
    finally:
        await consumer.stop()


def in_influxdb(settings: Settings, start: datetime, end: datetime) -> int:
    """The load generator's readings stamped between ``start`` and ``end`` that are in InfluxDB."""
    import urllib.parse
    import urllib.request

    q = (f"SELECT count(value) FROM gas WHERE sensor_id =~ /^{GAS}-/ AND time >= '{start.isoformat()}' "
         f"AND time <= '{end.isoformat()}'")
    url = f"http://127.0.0.1:{settings.services.influxdb_port}/query?" + urllib.parse.urlencode(
        {"db": settings.influx.bucket, "q": q})
    with urllib.request.urlopen(url, timeout=30) as resp:
        body = json.load(resp)
    series = body["results"][0].get("series", [])
    return int(series[0]["values"][0][1]) if series else 0


class Point(msgspec.Struct):
    measurement: str


class MetricRecords:
    """The worker's gas metric points (one per processed reading: the worker's output) as they
    arrive, from a consumer in its own thread: their count is what the worker has processed, gaps in
    their arrival times are processing pauses (the worker sends its points at least every 0.2 s)."""

    def __init__(self, settings: Settings) -> None:
        self.settings, self.times, self.stop = settings, [], threading.Event()
        self.points = 0
        self.ready = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.thread.start()
        self.ready.wait(30)

    async def _run(self) -> None:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(topics.KAFKA_METRICS, bootstrap_servers=self.settings.kafka.bootstrap,
                                    group_id=None, auto_offset_reset="latest")
        await consumer.start()
        self.ready.set()
        try:
            decode = msgspec.json.Decoder(list[Point]).decode
            while not self.stop.is_set():
                batch = await consumer.getmany(timeout_ms=50, max_records=5000)
                now = time.monotonic()
                for records in batch.values():
                    for r in records:
                        gas = sum(p.measurement == "gas" for p in decode(r.value))
                        if gas:
                            self.points += gas
                            self.times.append(now)
        finally:
            await consumer.stop()

    @property
    def count(self) -> int:
        return self.points

    def longest_gap(self, since: float, until: float) -> float:
        ts = [since] + [t for t in self.times if since <= t <= until] + [until]
        return max(b - a for a, b in zip(ts, ts[1:]))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)


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
    procs: dict[str, PipelineProcess] = field(default_factory=dict)
    servers: list = field(default_factory=list)
    records: MetricRecords | None = None

    def pids(self) -> dict[str, int]:
        out = {name: p.pid for name, p in self.procs.items() if p.pid}
        for s in self.servers:
            if (pid := s.pid()) is not None:
                out[s.name] = pid
        return out

    def positions(self) -> dict[str, int]:
        assert self.records is not None
        return {"ingest": asyncio.run(_in_kafka(self.settings)), "worker": self.records.count}

    def offer(self, rate: float, seconds: float, seed: int) -> Step:
        """Offer ``rate`` readings/s for ``seconds``; measure every stage up to GRACE_S after."""
        n = max(1, math.ceil(rate / PER_GENERATOR))
        before, pids = self.positions(), self.pids()
        cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        share = self.sensors // n
        started = datetime.now(UTC)
        gens = [child("generate", self.settings.mqtt.port, rate / n, seconds, k * share, share, seed * 100 + k)
                for k in range(n)]
        results = [result_of(g) for g in gens]
        published = sum(r["published"] for r in results)
        took = max(r["seconds"] for r in results)
        deadline = time.monotonic() + GRACE_S
        while True:
            now = {k: v - before[k] for k, v in self.positions().items()}
            if min(now["ingest"], now["worker"]) >= published or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        cpu = {name: (cpu_seconds(pid) - cpu0[name]) / max(published, 1) for name, pid in pids.items()}
        now["metrics"] = in_influxdb(self.settings, started, datetime.now(UTC))
        drained = self.wait_drained(published, before, 180)
        return Step(rate, published, took, now, cpu, drained)

    def wait_drained(self, published: int, before: dict[str, int], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self.positions()
            if min(now["ingest"] - before["ingest"], now["worker"] - before["worker"]) >= published:
                return True
            time.sleep(0.5)
        return False


def spread(xs: list[float], fmt: str = "{:,.0f}") -> str:
    return f"{fmt.format(statistics.median(xs))} ({fmt.format(min(xs))}-{fmt.format(max(xs))})"


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, math.ceil(q * len(xs)) - 1))]


def write_registry(path: Path, sensors: int, alarm_sensors: list[str]) -> None:
    import yaml

    devices = [{"id": f"{GAS}-{i:05d}", "kind": "gas", "interval_s": 3600, "site": f"site-{i // 20}",
                "district": f"d{i % 16}"} for i in range(sensors)]
    devices += [{"id": s, "kind": "gas", "interval_s": 3600, "site": f"alarm-{s}"} for s in alarm_sensors]
    path.write_text(yaml.safe_dump({"devices": devices}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sensors", type=int, default=20000)
    parser.add_argument("--rates", default="500,1000,2000,4000")
    parser.add_argument("--step-s", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--alarms", type=int, default=40, help="alarms per latency run")
    parser.add_argument("--parts", default="rates,latency,rebalance", help="what to measure (comma-separated)")
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "generate":
        port, rate, seconds, first, count, seed = args.args
        generate(int(port), float(rate), float(seconds), int(first), int(count), int(seed))
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
    write_registry(registry, args.sensors, alarm_sensors)
    env = services.isolated_env(run_dir) | {"SAFECITY_LOG_LEVEL": "INFO", "SAFECITY_REGISTRY": str(registry),
                                            "SAFECITY_WORKER__DATA_DIR": str(run_dir / "worker")}
    os.environ.update(env)
    settings = Settings()
    bench = Bench(settings, env, args.sensors)
    bench.servers = services.start_all(settings)
    asyncio.run(ensure_topics(settings.kafka))
    print(f"# pipeline bench: {args.sensors} gas sensors, {os.cpu_count()} cores, steps of {args.step_s:.0f} s, "
          f"median of {args.repeat} runs (range)", flush=True)
    try:
        for name in ("ingest", "alerter", "metrics", "worker"):
            bench.procs[name] = PipelineProcess([name], env, run_dir / f"{name}.log", READY[name]).start(180)
        bench.records = MetricRecords(settings)
        warm = bench.offer(200, 3, seed=1)  # warm up: every stage has seen readings
        if not warm.drained:
            raise SystemExit("the pipeline did not process the warm-up readings")

        ceilings = [baseline(settings, payloads(20000, "bench-base")) for _ in range(args.repeat)]
        print(f"ceiling: plain MQTT QoS 1, publisher -> Mosquitto -> subscriber: {spread(ceilings)} msg/s", flush=True)

        steps: dict[float, list[Step]] = {}
        sustained = 0.0
        for rate in (float(r) for r in args.rates.split(",")):
            runs = [bench.offer(rate, args.step_s, seed=int(rate) + k) for k in range(args.repeat)]
            steps[rate] = runs
            kept = sum(all(s.kept_up(st) for st in ("ingest", "worker")) for s in runs)
            print(f"offered {rate:,.0f}/s: published {spread([s.published / s.seconds for s in runs])}/s; "
                  + "; ".join(f"{st} {spread([s.stage_rate(st) for s in runs])}/s" for st in ("ingest", "worker",
                                                                                            "metrics"))
                  + f"; kept up in {kept} of {len(runs)}", flush=True)
            if kept * 2 > len(runs):
                sustained = rate
            else:
                break
        if not sustained:
            raise SystemExit("the pipeline kept up with none of the offered rates")
        at = steps[sustained]
        print(f"\nsustained end to end: {sustained:,.0f} readings/s "
              f"(ratio to the MQTT ceiling {sustained / statistics.median(ceilings):.2f})")
        print("CPU per reading at that rate, ms (median of runs, range):")
        for name in at[0].cpu:
            print(f"  {name:10s} {spread([s.cpu[name] * 1000 for s in at], '{:.3f}')}")
        print(f"  {'total':10s} {spread([sum(s.cpu.values()) * 1000 for s in at], '{:.3f}')}", flush=True)

        half = sustained / 2
        parts = set(args.parts.split(","))
        if "latency" in parts:
            latency(settings, args, half, alarm_prefixes)
        if "rebalance" in parts:
            rebalance(bench, run_dir, args, half)
    finally:
        if bench.records is not None:
            bench.records.close()
        for proc in bench.procs.values():
            proc.stop()
        for server in reversed(bench.servers):
            server.stop()


def latency(settings: Settings, args: argparse.Namespace, half: float, alarm_prefixes: list[str]) -> None:
    """Gas alarms raised by a probe process while the generator offers ``half`` readings/s."""
    p = {q: [] for q in (0.5, 0.95, 0.99)}
    lost = 0
    for r in range(len(alarm_prefixes)):
        seconds = args.alarms * 0.5 + 5
        gens = [child("generate", settings.mqtt.port, half, seconds, 0, args.sensors, 900 + r)]
        time.sleep(2)
        probe = child("latency", settings.mqtt.port, args.alarms, 0.5, alarm_prefixes[r])
        got = result_of(probe)
        for g in gens:
            result_of(g)
        lost += got["lost"]
        for q in p:
            p[q].append(percentile(got["latencies"], q) * 1000)
    print(f"\ngas alert latency at {half:,.0f} readings/s (publish -> alert on MQTT), ms, "
          f"{args.alarms} alarms per run, {lost} never arrived:")
    print("  " + "; ".join(f"p{round(q * 100)} {spread(v, '{:.0f}')}" for q, v in p.items()), flush=True)


def rebalance(bench: Bench, run_dir: Path, args: argparse.Namespace, half: float) -> None:
    """A second worker joins, then leaves, while the generator offers ``half`` readings/s."""
    settings, env, records = bench.settings, bench.env, bench.records
    joins, leaves = [], []
    for r in range(args.repeat):
        gen = child("generate", settings.mqtt.port, half, 75, 0, args.sensors, 700 + r)
        time.sleep(10)
        second = PipelineProcess(["worker"], env | {
            "SAFECITY_WORKER__DATA_DIR": str(run_dir / f"worker-2-{r}")},
            run_dir / f"worker-2-{r}.log", READY["worker"])
        joined = time.monotonic()
        second.start(120)
        time.sleep(max(0.0, joined + 30 - time.monotonic()))
        joins.append(records.longest_gap(joined, time.monotonic()))
        left = time.monotonic()
        second.stop()
        time.sleep(max(0.0, left + 25 - time.monotonic()))
        leaves.append(records.longest_gap(left, time.monotonic()))
        result_of(gen)
    print(f"\nrebalance at {half:,.0f} readings/s, longest time without a processed reading, s: "
          f"worker joins {spread(joins, '{:.1f}')}; worker leaves {spread(leaves, '{:.1f}')}")


if __name__ == "__main__":
    main()
