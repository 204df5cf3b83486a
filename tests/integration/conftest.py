"""The real servers, started once per test session on free loopback ports in a temporary
directory (so a running demo is never touched), and the pipeline's own processes."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from deploy import services
from models.settings import Settings
from tests.integration.harness import Process, Registry

WORKER_READY = "[^Worker]: Ready"
INGEST_READY = "MQTT connected"


@pytest.fixture(scope="session")
def stack_env(tmp_path_factory) -> dict[str, str]:
    run_dir: Path = tmp_path_factory.mktemp("services")
    env = services.isolated_env(run_dir) | {
        "SAFECITY_MQTT__INGEST_CLIENT_ID": f"ingest-{uuid.uuid4().hex[:6]}",
        "SAFECITY_KAFKA__PARTITIONS": "2",
        "SAFECITY_SERVICES__KAFKA_HEAP": "512m",
        "SAFECITY_INFLUX__FLUSH_INTERVAL_MS": "200",
        "SAFECITY_WORKER__DATA_DIR": str(run_dir / "worker"),
        "SAFECITY_WORKER__APP_ID": f"it-{uuid.uuid4().hex[:6]}",
        "SAFECITY_REGISTRY": str(run_dir / "registry.yaml"),
        "SAFECITY_GAS__CHECK_EVERY_S": "1",
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
    ingest = Process(["ingest"], stack_env, run_dir / "ingest.log", INGEST_READY).start()
    worker = Process(["worker"], stack_env, run_dir / "worker.log", WORKER_READY).start(timeout=120)
    procs = {"ingest": ingest, "worker": worker}
    yield procs
    for proc in procs.values():
        proc.stop()
