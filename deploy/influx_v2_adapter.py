"""InfluxDB v2-write adapter for InfluxDB 1.6 (development and tests only).

Debian ships InfluxDB 1.6, which answers 404 on ``/api/v2/write``; influxdb-client (the client the
processors use in production against InfluxDB 1.8+, 2.x or 3.x) writes there. This adapter
forwards each ``/api/v2/write`` body *unchanged* (line protocol, gzip or not) to 1.x ``/write``,
mapping ``bucket=db[/rp]`` and ``precision``, and translates the answer. It also serves ``/ping``
and ``/health``, and passes InfluxQL ``/query`` through unchanged (the endpoint 1.x, 2.x with a DBRP
mapping and 3.x all serve), so a tool that reads as well as writes (``safecity report``) needs one URL.

    python -m deploy.influx_v2_adapter --listen 127.0.0.1:8087 --upstream http://127.0.0.1:8086
"""

from __future__ import annotations

import argparse
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

logger = logging.getLogger(__name__)

PRECISIONS = {"ns": "n", "us": "u", "ms": "ms", "s": "s"}
FORWARDED_HEADERS = ("Content-Encoding", "Content-Type")


def v1_write_url(upstream: str, query: str) -> str:
    """Map a v2 write query string to the 1.x ``/write`` URL; raise ValueError when it cannot."""
    params = urllib.parse.parse_qs(query)
    bucket = params.get("bucket", [""])[0]
    if not bucket:
        raise ValueError("bucket is required")
    db, _, rp = bucket.partition("/")
    precision = params.get("precision", ["ns"])[0]
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
    v1 = {"db": db, "precision": PRECISIONS[precision]}
    if rp:
        v1["rp"] = rp
    return f"{upstream.rstrip('/')}/write?{urllib.parse.urlencode(v1)}"


class Handler(BaseHTTPRequestHandler):
    upstream = "http://127.0.0.1:8086"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        logger.debug(format, *args)

    def _reply(self, status: int, body: dict | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _query(self, body: bytes | None) -> None:
        """InfluxQL, passed through unchanged."""
        request = urllib.request.Request(self.upstream.rstrip("/") + self.path, data=body, method=self.command)
        for name in ("Content-Type", "Authorization"):
            if self.headers.get(name):
                request.add_header(name, self.headers[name])
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:
                data, status = resp.read(), resp.status
        except urllib.error.HTTPError as exc:
            data, status = exc.read(), exc.code
        except (urllib.error.URLError, OSError) as exc:
            self._reply(503, {"code": "unavailable", "message": f"upstream InfluxDB: {exc}"})
            return
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        path = urllib.parse.urlsplit(self.path).path
        if path == "/query":
            self._query(None)
        elif path == "/ping":
            self._reply(204)
        elif path == "/health":
            self._reply(200, {"name": "influxdb-v2-adapter", "status": "pass", "message": "ready"})
        else:
            self._reply(404, {"code": "not found", "message": f"{path} is not served by the adapter"})

    do_HEAD = do_GET

    def do_POST(self) -> None:  # noqa: N802
        parts = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if parts.path == "/query":
            self._query(body)
            return
        if parts.path != "/api/v2/write":
            self._reply(404, {"code": "not found", "message": f"{parts.path} is not served by the adapter"})
            return
        try:
            url = v1_write_url(self.upstream, parts.query)
        except ValueError as exc:
            self._reply(400, {"code": "invalid", "message": str(exc)})
            return
        request = urllib.request.Request(url, data=body, method="POST")
        for name in FORWARDED_HEADERS:
            if self.headers.get(name):
                request.add_header(name, self.headers[name])
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                self._reply(resp.status if resp.status != 200 else 204)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            try:
                message = json.loads(detail).get("error", detail)
            except ValueError:
                message = detail
            code = "invalid" if exc.code == 400 else "internal error"
            self._reply(exc.code, {"code": code, "message": message})
        except (urllib.error.URLError, OSError) as exc:
            self._reply(503, {"code": "unavailable", "message": f"upstream InfluxDB: {exc}"})


def serve(listen: str, upstream: str) -> ThreadingHTTPServer:
    host, _, port = listen.rpartition(":")
    handler = type("BoundHandler", (Handler,), {"upstream": upstream})
    return ThreadingHTTPServer((host, int(port)), handler)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:8087")
    parser.add_argument("--upstream", default="http://127.0.0.1:8086")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = serve(args.listen, args.upstream)
    logger.info("forwarding /api/v2/write on %s to %s/write", args.listen, args.upstream)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
