#!/usr/bin/env bash
# Set up (first run only) and run the whole test suite. The integration tests start their own
# Mosquitto, Kafka and InfluxDB on free loopback ports and stop them by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
