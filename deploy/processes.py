"""The pipeline's own processes (`safecity ingest`, `worker`, `alerter`, `metrics`) started as the
tests and benchmarks need them: each in its own process group, logging to a file, ready when its
log says so, stopped by PID (SIGTERM, then SIGKILL) or killed as a crash would."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from deploy.services import stop_pid

ROOT = Path(__file__).resolve().parents[1]

#: What each command logs once it is serving.
READY = {
    "worker": "[^Worker]: Ready",
    "ingest": "MQTT connected",
    "alerter": "alert service ready",
    "metrics": "metrics writer ready",
    "console": "console: http",
}


class PipelineProcess:
    """A `safecity` subcommand in its own process group, stopped by PID."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, ready_line: str | None = None) -> None:
        self.args, self.env, self.log, self.ready_line = args, env, log, ready_line
        self.proc: subprocess.Popen | None = None
        self.health_url: str | None = None  # where it serves GET /health, when it was given a port

    def start(self, timeout: float = 90) -> PipelineProcess:
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen([sys.executable, "-m", "safecity.cli", *self.args], cwd=ROOT, env=self.env,
                                         stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        if self.ready_line:
            deadline = time.monotonic() + timeout
            while True:
                if self.proc.poll() is not None:
                    raise AssertionError(f"{self.args} exited with {self.proc.returncode}: {self.tail()}")
                with open(self.log, "rb") as fh:
                    fh.seek(offset)
                    if self.ready_line.encode() in fh.read():
                        break
                if time.monotonic() > deadline:
                    self.stop()  # never left running behind a failed start
                    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {self.args} to log "
                                         f"{self.ready_line!r}: {self.tail()}")
                time.sleep(0.2)
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def tail(self, n: int = 3000) -> str:
        return self.log.read_bytes()[-n:].decode(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            stop_pid(self.proc.pid, timeout=30)
            self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: what a crash looks like (no flush, no commit, no goodbye)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()
