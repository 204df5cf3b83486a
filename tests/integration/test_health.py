"""Every pipeline process serves GET /health: each check passes on a running pipeline, and the
compose health check's command (`python -m safecity.health URL`) agrees with it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from deploy import services
from safecity.health import probe
from tests.integration.harness import poll

pytestmark = pytest.mark.integration


def test_each_process_reports_its_checks(pipeline):
    expected = {"ingest": {"loop", "mqtt", "kafka"}, "worker": {"loop", "kafka"},
                "alerter": {"loop", "mqtt", "kafka"}, "metrics": {"loop", "kafka", "influxdb"}}
    for name, checks in expected.items():
        url = pipeline[name].health_url
        ok, body = poll(lambda: (r := probe(url))[0] and r, 60, f"{name} healthy")
        assert body["component"] == name and body["ok"] is True
        assert set(body["checks"]) == checks and all(c["ok"] for c in body["checks"].values()), body
    worker = probe(pipeline["worker"].health_url)[1]["checks"]["kafka"]
    assert worker["partitions"] > 0 and worker["lag"] >= 0


def test_the_compose_health_command_exits_by_the_answer(pipeline):
    run = [sys.executable, "-m", "safecity.health"]
    ok = subprocess.run([*run, pipeline["ingest"].health_url], capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0 and '"ok": true' in ok.stdout
    closed = services.free_ports(1)[0]
    down = subprocess.run([*run, f"http://127.0.0.1:{closed}/health"], capture_output=True, text=True, timeout=30)
    assert down.returncode == 1
