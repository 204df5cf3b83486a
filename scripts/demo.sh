#!/usr/bin/env bash
# The main job: set up (first run only) and run `safecity demo` until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/safecity demo "$@"
