"""The production stack as docker-compose resolves it (``docker-compose config``, no daemon needed): it
validates with the documented example environment, every variable a pipeline service sets is a valid
setting, every mounted file exists once the documented commands made the secrets, every service has a
health check and a pinned image, and the pipeline waits for its servers to be healthy."""

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from models import settings as settings_module

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = {"ingest", "worker", "metrics", "alerter"}


def example_env() -> dict[str, str]:
    env = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    return env


def compose_config(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail("docker-compose is missing: scripts/setup.sh installs it")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SAFECITY_", "MQTT_", "INFLUX_"))}
    return subprocess.run([exe, "-f", str(ROOT / "docker-compose.yml"), *args, "config"], capture_output=True,
                          text=True, env=clean | env, cwd=ROOT)


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory) -> Path:
    """The broker's files made by the documented commands, as an operator would before `up`."""
    out = tmp_path_factory.mktemp("secrets")
    env = os.environ | example_env()
    made = subprocess.run([sys.executable, "-m", "safecity.cli", "devices", "credentials", "--registry",
                           str(ROOT / "deploy" / "registry.example.yaml"), "--out", str(out / "mosquitto")],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    assert made.returncode == 0, made.stderr
    subprocess.run(["bash", str(ROOT / "scripts" / "make-test-ca.sh"), str(out / "certs"), "mosquitto"], check=True,
                   capture_output=True)
    return out


@pytest.fixture(scope="module")
def config(secrets_dir) -> dict:
    env = example_env() | {"MOSQUITTO_AUTH_DIR": str(secrets_dir / "mosquitto"),
                           "MOSQUITTO_CERTS_DIR": str(secrets_dir / "certs")}
    out = compose_config(env)
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def test_the_stack_validates_with_the_example_environment():
    out = compose_config({}, "--env-file", str(ROOT / ".env.example"))
    assert out.returncode == 0, out.stderr
    services = yaml.safe_load(out.stdout)["services"]
    assert {"mosquitto", "kafka", "influxdb", "grafana", "postgres"} | PIPELINE <= set(services)


def test_it_refuses_to_start_without_its_secrets():
    env = {k: v for k, v in example_env().items() if not k.endswith(("PASSWORD", "TOKEN", "KEY"))}
    out = compose_config(env)
    assert out.returncode != 0 and re.search(r"set (\w+_PASSWORD|INFLUX_TOKEN|PSEUDONYM_KEY)", out.stderr)


def test_every_setting_a_pipeline_service_sets_is_known_and_valid(config, monkeypatch):
    for name in PIPELINE:
        env = config["services"][name]["environment"]
        for key in list(os.environ):
            if key.startswith(settings_module.ENV_PREFIX):
                monkeypatch.delenv(key)
        for key, value in env.items():
            if key.startswith(settings_module.ENV_PREFIX):
                monkeypatch.setenv(key, str(value))
        assert settings_module.config_errors() == [], name
        s = settings_module.Settings()
        assert s.health.port == 8091 and s.mqtt.host == "mosquitto" and s.kafka.bootstrap == "kafka:9092"
        assert s.influx.token.get_secret_value() == example_env()["INFLUX_TOKEN"]


def test_every_mounted_file_exists(config):
    for name, service in config["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith("/"):
                assert Path(source).exists(), f"{name} mounts {source}, which does not exist"


def test_every_service_has_a_health_check_and_a_pinned_image(config):
    for name, service in config["services"].items():
        if service.get("restart") == "no":  # a one-shot job (kafka-users): it runs once the server is healthy
            assert all(d["condition"] == "service_healthy" for d in service["depends_on"].values())
            assert re.search(r":\d+\.\d+\.\d+$", service["image"])
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        image = service["image"]
        release = r"\d+\.\d+" if image.startswith("postgres:") else r"\d+\.\d+\.\d+"  # PostgreSQL: 15.10 is a release
        assert re.search(rf"(:{release}[\w.-]*|@sha256:[0-9a-f]{{64}})$", image), f"{name}: {image} is not pinned to a release"
        assert service.get("restart") == "unless-stopped"
        assert service.get("deploy", {}).get("resources", {}).get("limits"), f"{name} has no resource limits"


def test_the_pipeline_starts_once_its_servers_are_healthy(config):
    services = config["services"]
    for name in PIPELINE:
        depends = services[name].get("depends_on", {})
        assert depends and all(d["condition"] == "service_healthy" for d in depends.values()), name
        assert "8091" in " ".join(services[name]["healthcheck"]["test"])
    assert set(services["ingest"]["depends_on"]) == {"mosquitto", "kafka"}
    assert set(services["alerter"]["depends_on"]) == {"mosquitto", "kafka", "postgres"}


def test_only_the_device_tls_port_faces_the_network(config):
    services = config["services"]

    def published(name):
        return [(str(p.get("host_ip", "")), str(p["published"])) if isinstance(p, dict) else tuple(
            str(p).rsplit(":", 2)[:-1]) for p in services[name].get("ports", [])]

    assert [port for _, port in published("mosquitto")] == ["8883"]
    assert all(host == "127.0.0.1" for host, _ in published("kafka") + published("alerter"))
    assert "use_username_as_clientid true" in (ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text()


def test_kafka_keeps_its_logs_on_its_volume(config):
    """The audit trail, the watch lists and every changelog live in Kafka's log directories: they must
    be on the mounted volume, not at the image's default under /tmp (gone when the container is
    recreated)."""
    kafka = config["services"]["kafka"]
    mounted = {v.split(":")[1] for v in kafka["volumes"] if not v.startswith("/")}
    log_dirs = kafka["environment"]["KAFKA_LOG_DIRS"].split(",")
    assert log_dirs and all(any(d == m or d.startswith(m + "/") for m in mounted) for d in log_dirs)


def test_kafka_paces_its_log_cleaner_as_the_local_broker_does(config):
    from models.settings import LocalServices

    paced = config["services"]["kafka"]["environment"]["KAFKA_LOG_CLEANER_IO_MAX_BYTES_PER_SECOND"]
    assert int(paced) == LocalServices().kafka_cleaner_mb_s * 1e6 > 0


def test_the_image_installs_the_pinned_lock_and_runs_unprivileged():
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "pip install --no-deps -r deploy/requirements.lock" in dockerfile
    user = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert user and user[-1] not in ("root", "0")
    lock = [line for line in (ROOT / "deploy" / "requirements.lock").read_text().splitlines()
            if line and not line.startswith("#")]
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+(\[[\w,]+\])?==[\w.+-]+", line) for line in lock), lock
    pinned = {re.split(r"[\[=]", line)[0].lower().replace("_", "-") for line in lock}
    wanted = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in wanted:
        name = re.split(r"[\[<>=!~ ]", dep)[0].lower().replace("_", "-")
        assert name in pinned, f"{name} is a dependency but not in deploy/requirements.lock"


def test_no_secret_is_committed():
    tracked = subprocess.run(["git", "ls-files"], capture_output=True, text=True, cwd=ROOT).stdout.split()
    assert not [f for f in tracked if f.startswith("deploy/secrets/") or f == ".env" or f.endswith((".key", "passwd"))]
    placeholder = lambda v: v.startswith("change-me") or set(v) == {"0"}  # noqa: E731 - zeros: a hex placeholder
    assert all(placeholder(v) or not k.endswith(("PASSWORD", "TOKEN", "KEY")) for k, v in example_env().items())
