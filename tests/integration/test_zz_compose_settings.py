"""The compose stack's own settings run the pipeline: each pipeline service's environment, exactly as
`docker-compose config` resolves it from `.env.example`, with only the addresses changed to the local
servers (and the files its volumes mount read from where they are), starts ingest, a worker, the
alert service, the metrics writer and the console; they report healthy, and a gas leak on a device of the example
registry comes out as an alert on MQTT and as metrics in InfluxDB.

Named to run last: it stops the session's pipeline processes and runs the compose ones in their place
(with the compose consumer groups, reading the session's topics from the start)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from deploy import services
from deploy.processes import READY
from models import topics
from safecity.health import probe
from tests.integration.harness import MqttProbe, Process, influx_query, poll
from tests.integration.test_alerting import leak

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def compose_services() -> dict:
    out = subprocess.run([shutil.which("docker-compose") or "docker-compose", "-f", str(ROOT / "docker-compose.yml"),
                          "--env-file", str(ROOT / ".env.example"), "config"], capture_output=True, text=True,
                         cwd=ROOT, env={k: v for k, v in os.environ.items() if not k.startswith("SAFECITY_")})
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)["services"]


def local_env(service: dict, settings, postgres, run_dir: Path, health_port: int, api_port: int) -> dict[str, str]:
    """The service's SAFECITY_* environment with the compose network's addresses replaced by the local
    servers', and container paths replaced by the files mounted there."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("/"):
            mounts[target] = source
    env = {k: str(v) for k, v in service["environment"].items() if k.startswith("SAFECITY_")}
    addresses = {
        "SAFECITY_MQTT__HOST": settings.mqtt.host, "SAFECITY_MQTT__PORT": str(settings.mqtt.port),
        "SAFECITY_KAFKA__BOOTSTRAP": settings.kafka.bootstrap, "SAFECITY_INFLUX__URL": settings.influx.url,
        "SAFECITY_ALERTS__DB_URL": postgres.url(), "SAFECITY_ALERTS__API_HOST": "127.0.0.1",
        "SAFECITY_ALERTS__SMTP_HOST": "127.0.0.1",
        # the local topics exist with the session's partition count; Faust needs its tables to match
        "SAFECITY_KAFKA__PARTITIONS": str(settings.kafka.partitions),
        "SAFECITY_WORKER__DATA_DIR": str(run_dir / "data"), "SAFECITY_HEALTH__PORT": str(health_port),
    }
    for key, value in list(env.items()):
        if key in addresses:
            env[key] = addresses[key]
        elif value in mounts:
            env[key] = mounts[value]
    for key, value in env.items():  # every other file setting names a file that is mounted, so here
        assert not value.startswith("/") or key in addresses or Path(value).exists(), (key, value)
    if "SAFECITY_ALERTS__DB_URL" in env:
        env["SAFECITY_ALERTS__API_PORT"] = str(api_port)
        env["SAFECITY_ALERTS__API_URL"] = f"http://127.0.0.1:{api_port}"
    if "SAFECITY_CONSOLE__HOST" in env:  # the console: on the health port's place
        env |= {"SAFECITY_CONSOLE__HOST": "127.0.0.1", "SAFECITY_CONSOLE__PORT": str(health_port)}
    return {k: v for k, v in os.environ.items() if not k.startswith("SAFECITY_")} | env


def test_the_compose_settings_run_the_pipeline(pipeline, settings, postgres, services_dir):
    composed = compose_services()
    for proc in pipeline.values():  # the compose processes take their place
        proc.stop()
    run_dir = services_dir / "compose-settings"
    run_dir.mkdir()
    ports = services.free_ports(6)
    procs = {}
    try:
        for i, name in enumerate(("ingest", "alerter", "metrics", "worker", "console")):
            env = local_env(composed[name], settings, postgres, run_dir, ports[i], ports[5])
            assert env["SAFECITY_REGISTRY"].endswith("deploy/registry.example.yaml")
            procs[name] = Process([name], env, run_dir / f"{name}.log", READY[name]).start(timeout=180)
            procs[name].health_url = f"http://127.0.0.1:{ports[i]}/{'healthz' if name == 'console' else 'health'}"
        for name, proc in procs.items():
            poll(lambda: probe(proc.health_url)[0], 120, f"the compose-configured {name} healthy")

        sensor = "gas-001"  # a device of the example registry the compose stack mounts
        alarm = MqttProbe(settings, f"{topics.PREFIX}/alerts/gas-level-1/{sensor}/#")
        try:
            leak(settings, sensor, (30.0, 31.0, 32.0)).close()
            fired = alarm.next_json(240)  # the compose worker first catches up on the session's topics
        finally:
            alarm.close()
        assert (fired["type"], fired["device_id"], fired["state"]) == ("gas-level-1", sensor, "firing")
        poll(lambda: influx_query(settings, f"SELECT value FROM gas WHERE sensor_id = '{sensor}'"), 120,
             "the leak's readings in InfluxDB through the compose metrics writer")
        ingest_log = (run_dir / "ingest.log").read_text(errors="replace")
        assert "$share/ingest/" in ingest_log  # the compose bridge subscribed in its share group
    finally:
        for proc in procs.values():
            proc.stop()
