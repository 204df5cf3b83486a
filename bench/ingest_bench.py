"""Ingest throughput: MQTT -> validation -> Kafka, against plain MQTT delivery in the same run.

    python -m bench.ingest_bench [--messages 20000] [--repeat 3]

Starts its own Mosquitto, Kafka and InfluxDB on free loopback ports (stopped by PID at the end),
then measures (1) the baseline: QoS 1 messages from a publisher to a subscriber (in another process,
as ingest is) through Mosquitto,
and (2) the same messages through the real ingest bridge until all are in Kafka (up to the Kafka
timestamp of the record that carries the last of them: ingest's send; counted as readings, since a
record may be a pack of several), alternately,
``--repeat`` times each; prints the median of each with its range (min-max).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt

from bench.kafka_events import end_offsets, wait_for_events
from bench.mqtt_load import QoS1Publisher
from deploy import services
from deploy.kafka_topics import ensure_topics
from models import schemas, topics
from models.schemas import GasReading, GasType, GasUnit
from models.settings import Settings
from models.topics import MessageKind

ROOT = Path(__file__).resolve().parents[1]


def payloads(n: int, sensor: str) -> list[bytes]:
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    return [schemas.encode(GasReading(sensor_id=sensor, gas=GasType.COMBUSTIBLE, value=2.0, unit=GasUnit.LEL,
                                      measured_at=t0 + timedelta(milliseconds=i), seq=i)) for i in range(n)]


def publish_all(host: str, port: int, topic: str, data: list[bytes]) -> None:
    """Publish at QoS 1, at most 1,000 unacknowledged (65k+ stalls a publisher), with the benchmarks'
    load publisher (``bench/mqtt_load``), and wait for every acknowledgement."""
    client = QoS1Publisher(host, port, f"bench-pub-{os.getpid()}")
    try:
        client.publish_all(topic.encode(), data)
        if not client.wait_acked(60):
            raise SystemExit(f"the broker acknowledged {client.acked} of {client.sent} messages")
    finally:
        client.close()


def subscriber(host: str, port: int, n: int) -> None:
    """The baseline's subscriber, in its own process (as ingest is): says ``ready`` once subscribed
    and ``done`` once ``n`` messages have arrived."""
    got, done = [0], threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-sub-{os.getpid()}")
    sub.on_connect = lambda c, *a: c.subscribe("bench/#", qos=1)
    sub.on_subscribe = lambda *a: print("ready", flush=True)

    def on_message(c, u, m) -> None:
        got[0] += 1
        if got[0] == n:
            done.set()

    sub.on_message = on_message
    sub.connect(host, port)
    sub.loop_start()
    done.wait(300)
    print("done" if done.is_set() else "timeout", flush=True)
    sub.disconnect()
    sub.loop_stop()


def publisher(host: str, port: int, n: int) -> None:
    """One of the baseline's publisher processes: says ``ready`` once its ``n`` messages are built,
    publishes them all on a line on stdin, and says ``done`` once all are acknowledged."""
    data = payloads(n, f"bench-base-{os.getpid()}")
    print("ready", flush=True)
    sys.stdin.readline()
    publish_all(host, port, "bench/readings", data)
    print("done", flush=True)


def baseline(settings: Settings, data: list[bytes], publishers: int = 1) -> float:
    """Plain MQTT QoS 1 delivery: this process publishes (or ``publishers`` processes, each a share,
    started together), a subscriber process receives; messages/s until the subscriber has them all."""
    def spawn(*args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "bench.ingest_bench", *args, "--mqtt-port",
                                 str(settings.mqtt.port)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True, start_new_session=True)

    share = len(data) // publishers
    total = len(data) if publishers == 1 else share * publishers
    proc = spawn("--subscribe", str(total))
    pubs = [spawn("--publish", str(share)) for _ in range(publishers)] if publishers > 1 else []
    try:
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit("the baseline subscriber did not subscribe")
        if any(p.stdout.readline().strip() != "ready" for p in pubs):
            raise SystemExit("a baseline publisher did not start")
        t = time.perf_counter()
        if pubs:
            for p in pubs:
                p.stdin.write("go\n")
                p.stdin.flush()
        else:
            publish_all(settings.mqtt.host, settings.mqtt.port, "bench/readings", data)
        if proc.stdout.readline().strip() != "done":
            raise SystemExit("the baseline subscriber did not get every message")
        return total / (time.perf_counter() - t)
    finally:
        for p in pubs:
            p.stdin.close()  # a publisher still waiting for its go (a failed start) goes on and ends
        proc.wait(30)
        for p in pubs:
            p.wait(90)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--subscribe", type=int, help=argparse.SUPPRESS)  # the baseline's subscriber process
    parser.add_argument("--publish", type=int, help=argparse.SUPPRESS)  # one of the baseline's publishers
    parser.add_argument("--mqtt-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.subscribe:
        subscriber("127.0.0.1", args.mqtt_port, args.subscribe)
        return
    if args.publish:
        publisher("127.0.0.1", args.mqtt_port, args.publish)
        return
    run_dir = Path(tempfile.mkdtemp(prefix="safecity-bench-"))
    env = services.isolated_env(run_dir) | {"SAFECITY_LOG_LEVEL": "WARNING"}
    os.environ.update(env)
    settings = Settings()
    started = services.start_all(settings)
    asyncio.run(ensure_topics(settings.kafka))
    bridge = None
    try:
        data = payloads(args.messages, "bench-gas")
        bridge = subprocess.Popen([sys.executable, "-m", "safecity.cli", "ingest"], env=env, cwd=ROOT,
                                  start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        topic = topics.kafka_topic(MessageKind.GAS_READING)
        # warm up: the bridge is subscribed once a message published now reaches Kafka
        deadline = time.monotonic() + 120
        while sum(asyncio.run(end_offsets(settings, topic)).values()) == 0:
            if time.monotonic() > deadline:
                raise SystemExit("the ingest bridge did not start")
            publish_all(settings.mqtt.host, settings.mqtt.port, "safecity/v1/gas/bench-gas/reading", data[:1])
            time.sleep(0.5)
        time.sleep(1)  # any warm-up message still on its way lands before the first run's offsets
        bases, rates = [], []
        for _ in range(args.repeat):
            bases.append(baseline(settings, data))
            before = asyncio.run(end_offsets(settings, topic))
            t = time.time()
            publish_all(settings.mqtt.host, settings.mqtt.port, "safecity/v1/gas/bench-gas/reading", data)
            # the time ingest sent the last of them (its records' Kafka timestamps), read by events: a
            # record may be a pack of readings
            found, last = asyncio.run(wait_for_events(settings, before, len(data), 600))
            if found < len(data):
                raise SystemExit("not every message reached Kafka")
            rates.append(len(data) / (last - t))

        def fmt(xs: list[float]) -> str:
            return f"{statistics.median(xs):,.0f} ({min(xs):,.0f}-{max(xs):,.0f})"

        base, rate = statistics.median(bases), statistics.median(rates)
        print(f"{args.messages} messages, median of {args.repeat} runs (range)\n"
              f"| path | messages/s | ratio to baseline |\n| --- | ---: | ---: |\n"
              f"| baseline: MQTT QoS 1, publisher -> Mosquitto -> subscriber | {fmt(bases)} | 1.00 |\n"
              f"| ingest: MQTT QoS 1 -> validate -> Kafka (acks=all), acked after Kafka | {fmt(rates)} | "
              f"{rate / base:.2f} |")
    finally:
        if bridge is not None:
            services.stop_pid(bridge.pid)
        for service in reversed(started):
            service.stop()


if __name__ == "__main__":
    main()
