"""The README's fault table, from the fault tests run on the real servers (`python -m scripts.fault_table`).

Runs the fault-injection tests (their own private Mosquitto, Kafka, InfluxDB and PostgreSQL on free
loopback ports), each of which records what it measured, and prints one Markdown row per fault:
readings published and acknowledged by the broker, how many reached Kafka, alert notifications
expected and sent (and duplicates), and how long recovery took. Exit status: pytest's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ["tests/integration/test_faults.py",
         "tests/integration/test_alerting.py::test_alerter_killed_mid_escalation_does_not_resend",
         "tests/integration/test_workers.py",
         "tests/integration/test_z_kafka_outage.py"]
COLUMNS = [("fault", "fault"), ("published", "readings published"), ("acknowledged", "acknowledged by the broker"),
           ("in_kafka", "in Kafka"), ("alerts_expected", "notifications expected"), ("notified", "sent"),
           ("duplicates", "duplicates"), ("recovery", "recovery")]


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "faults.jsonl"
        env = dict(os.environ, SAFECITY_FAULT_REPORT=str(report))
        code = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               "-m", "integration", *TESTS], cwd=ROOT,
                              env=env).returncode
        rows = [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []
    print()
    print("| " + " | ".join(title for _, title in COLUMNS) + " |")
    print("| " + " | ".join("---" if key in ("fault", "recovery") else "---:" for key, _ in COLUMNS) + " |")
    for row in rows:
        print("| " + " | ".join(str(row.get(key, "-")) for key, _ in COLUMNS) + " |")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
