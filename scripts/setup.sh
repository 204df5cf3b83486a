#!/usr/bin/env bash
# Set up a fresh machine: Debian packages (Mosquitto, InfluxDB, PostgreSQL for the alert store's tests,
# docker-compose for config checks, Chromium for the console's browser tests),
# a virtualenv with the project and its test tools, and Apache Kafka's broker jars from Maven.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto mosquitto-clients)
command -v influxd >/dev/null 2>&1 || need_apt+=(influxdb)
command -v docker-compose >/dev/null 2>&1 || need_apt+=(docker-compose)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)  # scripts/make-test-ca.sh
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
# the console's browser tests and `safecity console screenshot`: Debian's Chromium, driven by Playwright
# (its Python package only; no browser is ever downloaded)
[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || need_apt+=(chromium chromium-driver)
command -v pdftoppm >/dev/null 2>&1 || need_apt+=(poppler-utils)  # the report's PDF pages as PNG
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need_apt[@]}"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import safecity, faust, paho, cv2, pytest, hypothesis" >/dev/null 2>&1 \
   || [ pyproject.toml -nt .venv/.installed ]; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]'
  touch .venv/.installed
fi

# Kafka broker jars (Maven Central) and anything else `safecity services` needs.
.venv/bin/safecity services install
echo "setup: done"
