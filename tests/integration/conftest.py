"""The real servers, started once per test session on free loopback ports in a temporary
directory (so a running demo is never touched), and the pipeline's own processes."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from deploy import services
from deploy.processes import READY
from models.settings import Settings
from tests.integration import receivers as rcv
from tests.integration.harness import Process, Registry

WORKER_READY, INGEST_READY, ALERTER_READY, METRICS_READY = (READY[c] for c in ("worker", "ingest", "alerter", "metrics"))


@pytest.fixture(scope="session")
def postgres(services_dir):
    """A private PostgreSQL cluster for the alert store (Debian's server, started as the postgres user)."""
    pg = services.PostgreSQL("postgres", services_dir / "pg", "127.0.0.1", services.free_ports(1)[0])
    pg.install()
    pg.start()
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def receivers():
    """Local webhook / robot HTTP receivers and an SMTP server, for the notification channels."""
    http_port, smtp_port = services.free_ports(2)
    http, smtp = rcv.HttpReceivers(http_port).start(), rcv.SmtpReceiver(smtp_port).start()
    yield http, smtp
    http.stop()
    smtp.stop()


def policy_text(http: rcv.HttpReceivers) -> str:
    hook = f"secret: {rcv.WEBHOOK_SECRET}"
    return f"""
receivers:
  duty: {{webhook: {{url: "{http.url('/hook/duty')}", {hook}}}}}
  supervisor: {{webhook: {{url: "{http.url('/hook/supervisor')}", {hook}}}}}
  command: {{webhook: {{url: "{http.url('/hook/command')}", {hook}}}, mqtt: true}}
  leads: {{webhook: {{url: "{http.url('/hook/leads')}", {hook}}}}}
  broken: {{webhook: {{url: "{http.url('/fail')}", secret: x}}}}
  channels:
    webhook: {{url: "{http.url('/hook/channels')}", {hook}}}
    email: [duty@example.org]
    dingtalk: {{url: "{http.url('/ding?access_token=ding-token')}", secret: {rcv.DINGTALK_SECRET}}}
    wecom: "{http.url('/wecom?key=wecom-key')}"
    feishu: {{url: "{http.url('/feishu')}", secret: {rcv.FEISHU_SECRET}}}
routes:
  - match: {{device: "esc-*"}}
    receivers: [duty]
    remind_every: 4s
    escalate:
      - {{after: 3s, receivers: [supervisor]}}
      - {{after: 6s, receivers: [command]}}
  - match: {{device: "chan-*"}}
    receivers: [channels]
  - match: {{device: "broken-*"}}
    receivers: [broken, duty]
  - match: {{type: "watchlist-*", device: "lead-*"}}
    receivers: [leads]
group_window: 0s
"""


@pytest.fixture(scope="session")
def services_dir():
    """The servers' state and logs, outside pytest's own temporary tree: pytest makes that tree
    private to root at the start of every session (any other pytest run included), and Mosquitto
    and PostgreSQL run as their own users. Removed at the end unless SAFECITY_KEEP_TEST_DIRS is set."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="safecity-it-"))
    yield path
    if not os.environ.get("SAFECITY_KEEP_TEST_DIRS"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def stack_env(services_dir, postgres, receivers) -> dict[str, str]:
    run_dir: Path = services_dir / "services"
    run_dir.mkdir()
    http, smtp = receivers
    (run_dir / "policy.yaml").write_text(policy_text(http))
    api_port = services.free_ports(1)[0]
    env = services.isolated_env(run_dir) | {
        "SAFECITY_ALERTS__DB_URL": postgres.url(),
        "SAFECITY_ALERTS__POLICY": str(run_dir / "policy.yaml"),
        "SAFECITY_ALERTS__API_PORT": str(api_port),
        "SAFECITY_ALERTS__API_URL": f"http://127.0.0.1:{api_port}",
        "SAFECITY_ALERTS__GROUP_ID": f"it-alerts-{uuid.uuid4().hex[:6]}",
        "SAFECITY_ALERTS__SMTP_PORT": str(smtp.controller.port),
        "SAFECITY_ALERTS__RETRIES": "2",
        "SAFECITY_ALERTS__RETRY_BASE_S": "0.2",
        "SAFECITY_ALERTS__SNAPSHOT_EVERY_S": "1",
        "SAFECITY_MQTT__INGEST_CLIENT_ID": f"ingest-{uuid.uuid4().hex[:6]}",
        "SAFECITY_KAFKA__PARTITIONS": "2",
        "SAFECITY_SERVICES__KAFKA_HEAP": "512m",
        "SAFECITY_INFLUX__FLUSH_INTERVAL_MS": "200",
        "SAFECITY_WORKER__DATA_DIR": str(run_dir / "worker"),
        "SAFECITY_WORKER__APP_ID": f"it-{uuid.uuid4().hex[:6]}",
        "SAFECITY_REGISTRY": str(run_dir / "registry.yaml"),
        "SAFECITY_GAS__CHECK_EVERY_S": "1",
        "SAFECITY_WATCHLIST__COOLDOWN_SWEEP_S": "2",
    }
    return env


@pytest.fixture(scope="session")
def registry(stack_env) -> Registry:
    return Registry(Path(stack_env["SAFECITY_REGISTRY"]))


@pytest.fixture(scope="session")
def settings(stack_env) -> Settings:
    saved = dict(os.environ)
    os.environ.update(stack_env)
    try:
        return Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="session")
def stack(settings):
    """Mosquitto, Kafka, InfluxDB and the v2-write adapter; stopped by PID at the end."""
    services.install_all(settings)
    started = services.start_all(settings)
    yield settings
    for service in reversed(started):
        service.stop()


@pytest.fixture(scope="session")
def pipeline(stack, stack_env, settings, registry):
    """The ingest bridge and one Faust worker, running for the whole session."""
    run_dir = settings.services.run_dir
    ports = dict(zip(("ingest", "alerter", "metrics", "worker"), services.free_ports(4)))

    def env(name: str) -> dict[str, str]:  # each process serves its health endpoint on its own port
        return stack_env | {"SAFECITY_HEALTH__PORT": str(ports[name])}

    ingest = Process(["ingest"], env("ingest"), run_dir / "ingest.log", INGEST_READY).start()
    alerter = Process(["alerter"], env("alerter"), run_dir / "alerter.log", ALERTER_READY).start(timeout=60)
    metrics = Process(["metrics"], env("metrics"), run_dir / "metrics.log", METRICS_READY).start(timeout=60)
    worker = Process(["worker"], env("worker"), run_dir / "worker.log", WORKER_READY).start(timeout=120)
    procs = {"ingest": ingest, "alerter": alerter, "metrics": metrics, "worker": worker}
    for name, proc in procs.items():
        proc.health_url = f"http://127.0.0.1:{ports[name]}/health"
    yield procs
    for proc in procs.values():
        proc.stop()


def add_user(stack_env: dict[str, str], name: str, role: str) -> str:
    """A user of the alert API made with the CLI, as an administrator would; its token."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "safecity.cli", "alert", "user", "add", name, "--role", role],
                         env=stack_env, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def admin_env(pipeline, stack_env) -> dict[str, str]:
    """The environment of an admin's CLI (watch-list imports go through the API as this user)."""
    return stack_env | {"SAFECITY_ALERTS__TOKEN": add_user(stack_env, "officer-7", "admin")}


@pytest.fixture(scope="session")
def api_token(pipeline, stack_env, settings) -> str:
    """A supervisor's API token (made with the CLI, as an administrator would)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "safecity.cli", "alert", "user", "add", "duty-officer", "--role",
                          "supervisor"], env=stack_env, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


DISTRICTS_GEOJSON = {"type": "FeatureCollection", "features": [
    {"type": "Feature", "properties": {"name": "east"},
     "geometry": {"type": "Polygon", "coordinates": [[[121.50, 31.20], [121.56, 31.20], [121.56, 31.25],
                                                      [121.50, 31.25], [121.50, 31.20]]]}}]}


@pytest.fixture(scope="session")
def console(pipeline, stack_env, services_dir):
    """The operator console (`safecity console`) in front of the session's alert API, with three
    users made with the CLI as an administrator would: operator, supervisor, admin."""
    import json
    import subprocess
    import sys

    port = services.free_ports(1)[0]
    outlines = services_dir / "districts.geojson"
    outlines.write_text(json.dumps(DISTRICTS_GEOJSON))
    env = stack_env | {"SAFECITY_CONSOLE__PORT": str(port), "SAFECITY_CONSOLE__DISTRICTS_GEOJSON": str(outlines),
                       "SAFECITY_CONSOLE__MAX_FAILED_SIGNINS": "3", "SAFECITY_CONSOLE__LOCKOUT_S": "60"}
    users = {}
    for role in ("operator", "supervisor", "admin"):
        name, password = f"{role}-{uuid.uuid4().hex[:4]}", f"pw-{uuid.uuid4().hex}"
        subprocess.run([sys.executable, "-m", "safecity.cli", "console", "user", name, "--role", role,
                        "--password-stdin"], input=password + "\n", env=stack_env, capture_output=True, text=True,
                       check=True)
        users[role] = (name, password)
    proc = Process(["console"], env, Path(stack_env["SAFECITY_SERVICES__RUN_DIR"]) / "console.log",
                   READY["console"]).start(timeout=60)
    proc.url, proc.users = f"http://127.0.0.1:{port}", users
    yield proc
    proc.stop()
