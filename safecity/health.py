"""The health endpoint every pipeline process serves: ``GET /health`` answers 200 with its checks when
each passes and 503 when one does not, as JSON (no personal data: counts, ages and states only).

    {"component": "ingest", "ok": false, "checks": {"loop": {"ok": true, "age_s": 0.4},
     "mqtt": {"ok": true, ...}, "kafka": {"ok": false, "outage_s": 41.0, "waiting": 1200}}}

Container health checks (``docker-compose.yml``) run ``python -m safecity.health URL``, which exits 0
when healthy (the image needs no curl). The server is a thread of its own, so it answers while the
process's event loop is busy; checks only read what the process keeps up to date (no I/O, no loop
calls), and the ``loop`` check says when the loop last ran (a blocked loop fails it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

logger = logging.getLogger(__name__)

LOOP_STALL_S = 15.0  # a loop that has not run for this long fails its check


@dataclass
class Check:
    ok: bool
    detail: dict = field(default_factory=dict)


class Health:
    def __init__(self, component: str) -> None:
        self.component = component
        self.checks: dict[str, Callable[[], Check]] = {}
        self.beat = time.monotonic()
        self.add("loop", self._loop)
        self._server: ThreadingHTTPServer | None = None

    def add(self, name: str, check: Callable[[], Check]) -> None:
        self.checks[name] = check

    def _loop(self) -> Check:
        age = time.monotonic() - self.beat
        return Check(age < LOOP_STALL_S, {"age_s": round(age, 1)})

    async def heartbeat(self, every_s: float = 1.0) -> None:
        """Run on the process's event loop: the ``loop`` check's evidence."""
        while True:
            self.beat = time.monotonic()
            await asyncio.sleep(every_s)

    def report(self) -> dict:
        checks = {}
        for name, check in list(self.checks.items()):
            try:
                result = check()
                checks[name] = {"ok": bool(result.ok), **result.detail}
            except Exception as exc:  # noqa: BLE001 - a failing check is a failed check, not a crash
                checks[name] = {"ok": False, "error": type(exc).__name__}
        return {"component": self.component, "ok": all(c["ok"] for c in checks.values()), "checks": checks}

    def serve(self, host: str, port: int) -> Health:
        health = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path.split("?")[0] not in ("/health", "/healthz"):
                    self.send_error(404)
                    return
                body = health.report()
                data = json.dumps(body).encode()
                self.send_response(200 if body["ok"] else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args) -> None:  # polled every few seconds: not logged
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="health", daemon=True).start()
        logger.info("health endpoint on http://%s:%d/health", host, port)
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def serve_from_settings(component: str, settings) -> Health:
    """A Health for ``component``, served on ``settings.health`` when a port is set."""
    health = Health(component)
    if settings.health.port is not None:
        health.serve(settings.health.host, settings.health.port)
    return health


def probe(url: str, timeout: float = 5.0) -> tuple[bool, dict | str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return True, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            return False, json.loads(exc.read())
        except ValueError:
            return False, f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return False, str(exc)


def main(argv: list[str]) -> int:
    """``python -m safecity.health URL``: exit 0 when healthy, 1 when not; the report on stdout."""
    if len(argv) != 1:
        print("usage: python -m safecity.health http://127.0.0.1:8091/health", file=sys.stderr)
        return 2
    ok, body = probe(argv[0])
    print(json.dumps(body) if isinstance(body, dict) else body)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
