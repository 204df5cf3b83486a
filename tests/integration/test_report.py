"""The governance report from the real pipeline's data: `safecity report` run as an operator would, its
figures checked against the alert store and InfluxDB queried directly (not just "non-empty")."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from devices.client import DeviceClient
from devices.simulators import HotelSim
from models import topics
from models.topics import DeviceKind, MessageKind
from tests.integration.harness import ROOT, influx_query, poll, settled
from tests.integration.test_alerting import QUIET, leak

pytestmark = pytest.mark.integration


def report(stack_env, out, *args) -> dict:
    done = subprocess.run([sys.executable, "-m", "safecity.cli", "report", *args, "--out", str(out)], env=stack_env,
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    page = out.read_text(encoding="utf-8")
    return json.loads(re.search(r'<script id="report-data" type="application/json">(.*?)</script>', page, re.S)
                      .group(1).replace("<\\/", "</"))


def test_the_report_matches_the_store_and_influxdb(pipeline, settings, registry, postgres, stack_env, tmp_path):
    sensor = registry.add("gas", district="xuhui", site="report-site", **QUIET)
    hotel = registry.add("hotel", district="xuhui")
    leak(settings, sensor, (30.0, 31.0, 32.0)).close()
    desk = DeviceClient(settings.mqtt, DeviceKind.HOTEL, hotel).start()
    sim = HotelSim(hotel, random.Random(7))
    try:
        for _ in range(5):
            desk.publish(MessageKind.REGISTRATION, sim.next(datetime.now(UTC))).wait_for_publish(10)
    finally:
        desk.close()
    poll(lambda: len(influx_query(settings, f"SELECT count FROM registrations WHERE hotel_id = '{hotel}'")) == 5, 60,
         "the five registrations counted")
    # everything sent so far is processed and stored: the worker, the alert service, the metrics writer
    settled(settings, settings.worker.app_id, topics.KAFKA_TOPICS[MessageKind.GAS_READING])
    settled(settings, settings.worker.app_id, topics.KAFKA_URGENT[MessageKind.GAS_READING])
    settled(settings, settings.alerts.group_id, topics.KAFKA_ALERTS)
    settled(settings, f"{settings.worker.app_id}-metrics", topics.KAFKA_METRICS)
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end = datetime.now(UTC) + timedelta(seconds=1)

    engine = sa.create_engine(postgres.url())

    def store(where: str = "") -> tuple[int, int, int]:
        with engine.connect() as conn:
            return conn.execute(sa.text(
                "SELECT count(*), count(*) FILTER (WHERE acknowledged_at IS NOT NULL OR closed_at IS NOT NULL), "
                "count(*) FILTER (WHERE type LIKE 'gas-level%') FROM alerts WHERE first_seen >= :s AND first_seen < :e"
                + where), {"s": start, "e": end}).one()

    def influx(q: str) -> list[dict]:
        return influx_query(settings, q + f" WHERE time >= '{start.strftime('%Y-%m-%dT%H:%M:%SZ')}' AND time < "
                                          f"'{end.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}'")

    data = report(stack_env, tmp_path / "all.html", "--from", start.isoformat(), "--to", end.isoformat())
    issued, handled, gas = store()
    k = data["kpis"]
    assert (k["warnings_issued"], k["warnings_handled"], k["gas_alarms"]) == (issued, handled, gas) and gas >= 1
    (regs,) = influx('SELECT sum("count") AS n FROM registrations')
    assert k["registrations"] == regs["n"] >= 5
    health = influx('SELECT mean("healthy") AS h FROM camera_health')
    assert k["camera_healthy_share"] == (round(health[0]["h"], 4) if health else None)
    assert {"site": "report-site", "alarms": 1} in data["gas_sites_with_alarms"]
    assert sum(w["issued"] for w in data["warnings_by_type_and_district"]) == issued

    xuhui = report(stack_env, tmp_path / "xuhui.html", "--from", start.isoformat(), "--to", end.isoformat(),
                   "--district", "xuhui")
    issued_x, handled_x, gas_x = store(" AND district = 'xuhui'")
    kx = xuhui["kpis"]
    assert (kx["warnings_issued"], kx["warnings_handled"], kx["gas_alarms"]) == (issued_x, handled_x, gas_x)
    assert gas_x >= 1 and issued_x <= issued
    assert all(w["district"] == "xuhui" for w in xuhui["warnings_by_type_and_district"])
    hotels_x = [d["id"] for d in registry.devices if d["kind"] == "hotel" and d.get("district") == "xuhui"]
    regs_x = influx_query(settings, 'SELECT sum("count") AS n FROM registrations WHERE hotel_id =~ /^('
                          + "|".join(hotels_x) + f")$/ AND time >= '{start.strftime('%Y-%m-%dT%H:%M:%SZ')}'")
    assert kx["registrations"] == regs_x[0]["n"] >= 5
    engine.dispose()
    page = (tmp_path / "all.html").read_text(encoding="utf-8")
    assert "Key figures" in page and "<svg" in page

    # the same report as PDF (headless Chromium), and its pages as PNG by the README's command
    pdf = tmp_path / "report.pdf"
    done = subprocess.run([sys.executable, "-m", "safecity.cli", "report", "--from", start.isoformat(), "--to",
                           end.isoformat(), "--out", str(pdf)], env=stack_env, cwd=ROOT, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    issued_row = next(line for line in text.splitlines() if line.strip().startswith("Warnings issued"))
    assert issued_row.split()[2] == str(issued)  # the figure in the PDF is the store's
    assert "Key figures" in text and "Gas sites with alarms" in text and "report-site" in text
    subprocess.run(["pdftoppm", "-png", "-r", "60", str(pdf), str(tmp_path / "report-page")], check=True)
    pages = sorted(tmp_path.glob("report-page-*.png"))
    assert pages and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pages)
