"""`safecity gas replay`: the stable command-line contract."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEADER = "time,sensor_id,gas,value,unit\n"


def replay(tmp_path: Path, body: str, *args: str) -> subprocess.CompletedProcess:
    path = tmp_path / "series.csv"
    path.write_text(body)
    return subprocess.run([sys.executable, "-m", "safecity.cli", "gas", "replay", str(path), *args],
                          capture_output=True, text=True, cwd=ROOT)


def rows(lines: list[tuple[int, str, str, str, str]]) -> str:
    return HEADER + "".join(f"2026-01-01T00:{m // 60:02d}:{m % 60:02d}Z,{s},{g},{v},{u}\n" for m, s, g, v, u in lines)


def test_leak_series_prints_each_transition_in_time_order(tmp_path):
    values = [2, 8, 14, 27, 35, 52, 58, 40, 30, 15, 10, 5, 3] + [2] * 8
    out = replay(tmp_path, rows([(10 * i, "g1", "combustible", str(v), "%LEL") for i, v in enumerate(values)]))
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert all(set(x) == {"time", "sensor_id", "type", "state", "severity"} for x in lines)
    assert [x["time"] for x in lines] == sorted(x["time"] for x in lines)
    assert [(x["type"], x["state"]) for x in lines if x["state"] == "firing"] == [
        ("gas-rate-of-rise", "firing"), ("gas-level-1", "firing"), ("gas-level-2", "firing")]
    assert ("gas-level-1", "cleared") in [(x["type"], x["state"]) for x in lines]


def test_empty_and_nan_values_are_faults_and_silence_is_found_by_later_readings(tmp_path):
    body = rows([(0, "g1", "combustible", "", "%LEL"), (0, "g2", "co", "NaN", "ppm"),
                 (60, "g2", "co", "3", "ppm"), (600, "g2", "co", "3", "ppm")])
    lines = [json.loads(x) for x in replay(tmp_path, body).stdout.splitlines()]
    assert {(x["sensor_id"], x["type"], x["state"]) for x in lines} >= {
        ("g1", "sensor-fault", "firing"), ("g2", "sensor-fault", "firing"), ("g2", "sensor-fault", "cleared"),
        ("g1", "sensor-offline", "firing")}
    offline = next(x for x in lines if x["type"] == "sensor-offline")
    assert offline["time"].startswith("2026-01-01T00:03:00")  # last reading + 3 x 60 s, not the detecting reading


def test_interval_option_changes_when_silence_counts(tmp_path):
    body = rows([(0, "g1", "combustible", "1", "%LEL"), (100, "g2", "combustible", "1", "%LEL")])
    assert "sensor-offline" not in replay(tmp_path, body).stdout
    assert "sensor-offline" in replay(tmp_path, body, "--interval", "30").stdout


def test_battery_column_gives_low_battery(tmp_path):
    body = "time,sensor_id,gas,value,unit,battery\n2026-01-01T00:00:00Z,g1,combustible,1,%LEL,12\n"
    lines = [json.loads(x) for x in replay(tmp_path, body).stdout.splitlines()]
    assert [(x["type"], x["severity"]) for x in lines] == [("low-battery", "maintenance")]


@pytest.mark.parametrize(("body", "line"), [
    (HEADER + "2026-01-01T00:00:00Z,g1,combustible,1,%LEL\nnot-a-time,g1,combustible,1,%LEL\n", 3),
    (HEADER + "2026-01-01T00:00:00Z,g1,methane,1,%LEL\n", 2),
    (HEADER + "2026-01-01T00:00:00Z,g1,co,1,%LEL\n", 2),
    (HEADER + "2026-01-01T00:00:00Z,g1,co,abc,ppm\n", 2),
    (HEADER + "2026-01-01T00:00:00Z,g1,co\n", 2),
    ("time,sensor,value\n", 1),
    (HEADER + "2026-01-01T00:00:00Z,g1,co,1,ppm\n2026-01-01T00:01:00,g1,co,1,ppm\n", 3),  # no time zone
])
def test_malformed_rows_exit_2_naming_the_line(tmp_path, body, line):
    out = replay(tmp_path, body)
    assert out.returncode == 2 and f"line {line}" in out.stderr and out.stdout == ""


def test_unreadable_file_exits_2(tmp_path):
    out = subprocess.run([sys.executable, "-m", "safecity.cli", "gas", "replay", str(tmp_path / "missing.csv")],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2 and "cannot read" in out.stderr


def test_a_file_that_is_not_utf8_exits_2(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + "2026-01-01T00:00:00Z,g1,combustible,1,%LEL\n").encode() + b"\xff\xfe,\n")
    out = subprocess.run([sys.executable, "-m", "safecity.cli", "gas", "replay", str(path)],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2 and "not UTF-8" in out.stderr and "Traceback" not in out.stderr


def test_with_a_registry_site_alarms_are_replayed_too(tmp_path):
    (tmp_path / "r.yaml").write_text("devices:\n  - {id: g1, kind: gas, site: b1}\n  - {id: g2, kind: gas, site: b1}\n")
    series = [(0, "g1", 30), (1, "g1", 31), (2, "g2", 55), (3, "g2", 56)]
    series += [(t, sensor, 30) for t in range(10, 200, 10) for sensor in ("g1", "g2")]  # both stay at level 1
    series += [(t, sensor, 2) for t in range(200, 330, 10) for sensor in ("g1", "g2")]
    body = rows([(t, sensor, "combustible", v, "%LEL") for t, sensor, v in series])
    lines = [json.loads(x) for x in replay(tmp_path, body, "--registry", str(tmp_path / "r.yaml")).stdout.splitlines()]
    site = [(x["sensor_id"], x["state"]) for x in lines if x["type"] == "gas-site-alarm"]
    assert site == [("b1", "firing"), ("b1", "cleared")]
    # g2's level 2 clears at about 70 s while both sensors stay at level 1: the site alarm holds until
    # a level 1 clears (after 200 s)
    when = {(x["sensor_id"], x["type"], x["state"]): x["time"] for x in lines}
    assert when[("g2", "gas-level-2", "cleared")] < "2026-01-01T00:02:00"
    assert when[("b1", "gas-site-alarm", "cleared")] > "2026-01-01T00:04:00"
