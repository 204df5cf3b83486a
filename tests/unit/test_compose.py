import os
import pathlib
import shutil
import subprocess

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_compose_file_validates():
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail("docker-compose is missing: scripts/setup.sh installs it")
    env = dict(os.environ, GRAFANA_ADMIN_PASSWORD="x", MQTT_INGEST_PASSWORD="x", MQTT_ALERTER_PASSWORD="x",
               POSTGRES_PASSWORD="x")
    out = subprocess.run([exe, "-f", str(ROOT / "docker-compose.yml"), "config"], capture_output=True, text=True,
                         env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    config = yaml.safe_load(out.stdout)
    assert {"mosquitto", "kafka", "influxdb", "grafana", "ingest", "worker", "alerter", "postgres"} <= set(config["services"])


def test_compose_refuses_to_start_without_secrets():
    env = {k: v for k, v in os.environ.items() if not k.endswith("PASSWORD")}
    out = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"], capture_output=True,
                         text=True, env=env, cwd=ROOT)
    assert out.returncode != 0 and "PASSWORD" in out.stderr


def test_device_acl_confines_each_device_to_its_own_topics():
    acl = (ROOT / "deploy" / "mosquitto" / "acl").read_text()
    patterns = [line.split()[2] for line in acl.splitlines() if line.startswith("pattern write")]
    assert patterns and all("/%u/" in p for p in patterns)


def test_kafka_keeps_its_logs_on_its_volume():
    """The audit trail, the watch lists and every changelog live in Kafka's log directories: they must
    be on the mounted volume, not at the image's default under /tmp (gone when the container is
    recreated)."""
    kafka = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["kafka"]
    mounted = {v.split(":")[1] for v in kafka["volumes"] if not v.startswith((".", "/"))}
    log_dirs = kafka["environment"]["KAFKA_LOG_DIRS"].split(",")
    assert log_dirs and all(any(d == m or d.startswith(m + "/") for m in mounted) for d in log_dirs)
