"""`safecity demo`: start everything on this machine and show the pipeline live until Ctrl-C.

Starts the local services that are not already running, the ingest bridge, one worker and the
alert service (child processes, stopped by PID; the alert store is the embedded SQLite file), and a
simulated fleet; watches the ingest counters and the alerts on MQTT, and draws events per second by
kind, dead letters and alerts as they fire, acknowledged and close.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from deploy import services
import yaml

from deploy import DEMO_DIR
from devices.fleet import FleetSpec, registry_for, run_fleet
from models import topics
from models.settings import Settings
from processors.rules import watchlist
from safecity import operator
from safecity.mqtt import make_mqtt_client

logger = logging.getLogger(__name__)


class Watcher:
    """Follows ingest counters and alert transitions on MQTT."""

    def __init__(self, settings: Settings, hint: str = "") -> None:
        self.hint = hint
        self.lock = threading.Lock()
        self.stats: dict = {}
        self.rates: dict[str, float] = {}
        self._prev: tuple[float, dict[str, int]] | None = None
        self.alerts: collections.deque[dict] = collections.deque(maxlen=12)
        self.alert_count = 0
        self.firing: dict[str, dict] = {}
        self.client = make_mqtt_client(settings.mqtt, f"safecity-demo-{os.getpid()}", clean_session=True)
        self.client.on_connect = lambda c, *a: c.subscribe([(topics.stats_topic("ingest"), 0),
                                                            (topics.ALERTS_SUBSCRIPTION, 1)])
        self.client.on_message = self._on_message
        self.client.connect_async(settings.mqtt.host, settings.mqtt.port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        try:
            data = json.loads(msg.payload)
        except ValueError:
            return
        with self.lock:
            if msg.topic.startswith(f"{topics.PREFIX}/system/"):
                now = time.monotonic()
                if self._prev:
                    dt = max(now - self._prev[0], 1e-6)
                    self.rates = {k: (v - self._prev[1].get(k, 0)) / dt for k, v in data["accepted"].items()}
                self._prev = (now, dict(data["accepted"]))
                self.stats = data
            elif not msg.retain:
                self.alerts.appendleft(data)
                self.alert_count += 1
                if data.get("state") == "firing":
                    self.firing[data["alert_id"]] = data
                else:
                    self.firing.pop(data.get("alert_id"), None)

    def render(self, started: float) -> Group:
        with self.lock:
            events = Table(title="events through ingest", expand=True)
            for col in ("kind", "per second", "total"):
                events.add_column(col, justify="right" if col != "kind" else "left")
            for kind, total in sorted(self.stats.get("accepted", {}).items()):
                events.add_row(kind, f"{self.rates.get(kind, 0.0):.1f}", str(total))
            dead = Table(title="dead letters", expand=True)
            dead.add_column("reason")
            dead.add_column("count", justify="right")
            for reason, count in sorted(self.stats.get("dead_letters", {}).items()):
                dead.add_row(reason, str(count))
            alerts = Table(title=f"alerts ({self.alert_count} transitions, {len(self.firing)} firing)", expand=True)
            for col in ("time", "status", "severity", "type", "device", "summary"):
                alerts.add_column(col)
            for a in self.alerts:
                status = a.get("status", a.get("state", ""))
                colour = {"firing": "red", "acknowledged": "yellow"}.get(status, "green")
                alerts.add_row(str(a.get("at", ""))[11:19], f"[{colour}]{status}[/]", a.get("severity", ""),
                               a.get("type", ""), a.get("device_id", ""), a.get("summary", ""))
            header = (f"SafeCity Stream demo  |  up {time.monotonic() - started:.0f}s  |  "
                      f"queue {self.stats.get('queue', '-')}  in flight {self.stats.get('pending', '-')}  |  "
                      "Ctrl-C to stop" + (f"\n{self.hint}" if self.hint else ""))
        return Group(Panel(header), events, dead, alerts)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _spawn(args: list[str], log: Path, extra_env: dict[str, str]) -> subprocess.Popen:
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
               **extra_env)
    with open(log, "ab") as fh:
        return subprocess.Popen([sys.executable, "-m", "safecity.cli", *args], stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=env)


DEMO_POLICY = """\
# written by the demo: every alert that is not info goes to the command center's MQTT clients
# (safecity/v1/notifications/command-center), reminded every 10 minutes until acknowledged
receivers:
  command-center: {mqtt: true}
routes:
  - match: {}
    receivers: [command-center]
    remind_every: 10m
group_window: 1m
"""


def _demo_users(settings: Settings) -> tuple[str, Path]:
    """The demo's supervisor: an API token for the CLI, and a console password kept in
    <run_dir>/console-password (0600; new each run)."""
    import secrets
    from datetime import UTC, datetime

    from alerting.service import store_url
    from alerting.store import AlertStore
    from console.auth import hash_password

    password = secrets.token_urlsafe(12)
    path = settings.services.run_dir.resolve() / "console-password"
    path.unlink(missing_ok=True)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
        fh.write(password + "\n")
    store = AlertStore(store_url(settings))
    store.migrate()
    token = store.add_user("demo-supervisor", "supervisor", datetime.now(UTC), hash_password(password))
    store.close()
    return token, path


def run_demo(settings: Settings, rate: float = 2.0, duration: float | None = None, busy: bool = False) -> int:
    console = Console()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # retries on just-created topics are normal
    run_dir = settings.services.run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    started_services: list[services.Service] = []
    children: list[subprocess.Popen] = []
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *a: stop.set())
    try:
        with console.status("installing and starting Mosquitto, Kafka, InfluxDB ..."):
            services.install_all(settings)
            for service in services.local_services(settings):
                if service.pid() is None:
                    service.start()
                    started_services.append(service)
        console.print(f"services up; logs in {run_dir}")
        vehicles, persons = (DEMO_DIR / "watchlist-vehicles.csv").read_text(), (DEMO_DIR / "watchlist-persons.csv").read_text()
        vehicle_entries, person_entries = watchlist.parse_vehicles(vehicles), watchlist.parse_persons(persons)
        # a calm city by default (a leak every few minutes, a wanted plate now and then), so an alert
        # stands out; --busy: incidents everywhere, for load demos
        spec = FleetSpec(rate=rate, malformed_fraction=0.01, wanted_rate=0.01 if busy else 0.001,
                         leak_probability=0.01 if busy else 0.0005,
                         wanted_plates=tuple(e.plate for e in vehicle_entries),
                         wanted_ids=tuple(e.id_number for e in person_entries if e.id_number))
        env = {}
        if settings.registry is None:  # the embedded default: a registry of the simulated city
            registry = run_dir / "demo-registry.yaml"
            registry.write_text(yaml.safe_dump(registry_for(spec), sort_keys=False))
            env["SAFECITY_REGISTRY"] = str(registry)
        if settings.alerts.policy is None:  # command-center clients hear of every alert on MQTT
            policy = run_dir / "demo-policy.yaml"
            policy.write_text(DEMO_POLICY)
            env["SAFECITY_ALERTS__POLICY"] = str(policy)
        token, password_file = _demo_users(settings)  # migrates the store before the alert service starts
        children.append(_spawn(["ingest"], run_dir / "ingest.log", env))
        children.append(_spawn(["alerter"], run_dir / "alerter.log", env))
        children.append(_spawn(["metrics"], run_dir / "metrics.log", env))
        children.append(_spawn(["worker"], run_dir / "worker.log", env))
        children.append(_spawn(["console"], run_dir / "console.log", env))
        console_url = f"http://{settings.console.host}:{settings.console.port}/"
        with console.status("publishing the demo watch lists ..."):
            operator.import_list(settings, "vehicles", vehicles.encode(), vehicle_entries, "demo", "demo vehicles")
            operator.import_list(settings, "persons", persons.encode(), person_entries, "demo", "demo persons")
        console.print(f"[bold]console:[/] {console_url}  user demo-supervisor, password in {password_file}")
        watcher = Watcher(settings, f"console: {console_url} (demo-supervisor, password in {password_file})\n"
                                    f"act on an alert: SAFECITY_ALERTS__TOKEN={token} safecity alert ack ALERT_ID  "
                                    f"(list: safecity alert list --state firing)")
        fleet = threading.Thread(target=run_fleet, args=(settings.mqtt, spec, stop), daemon=True)
        fleet.start()
        began = time.monotonic()
        try:
            with Live(watcher.render(began), console=console, refresh_per_second=2) as live:
                while not stop.wait(0.5):
                    live.update(watcher.render(began))
                    if duration is not None and time.monotonic() - began > duration:
                        break
                    for child in children:
                        if child.poll() is not None:
                            raise RuntimeError(f"{child.args[-1]} exited with {child.returncode}; see {run_dir}")
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            fleet.join(timeout=15)
            watcher.close()
        return 0
    except KeyboardInterrupt:
        return 130
    except (RuntimeError, services.ServiceError) as exc:
        console.print(f"[red]demo failed:[/] {exc}")
        return 1
    finally:
        stop.set()
        with console.status("stopping ..."):
            for child in reversed(children):
                services.stop_pid(child.pid, timeout=30)
            for service in reversed(started_services):
                service.stop()
        signal.signal(signal.SIGTERM, previous)
        console.print("stopped everything the demo started")
