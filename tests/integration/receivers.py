"""Local receivers for the notification channels: an HTTP server that checks webhook and robot
requests as the real services would (signature, body shape) and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.policy import default as email_policy

from aiohttp import web
from aiosmtpd.controller import Controller

WEBHOOK_SECRET = "whsec-test"
DINGTALK_SECRET = "SECdingtalk-test"
FEISHU_SECRET = "feishu-test"


@dataclass
class Received:
    path: str
    key: str  # X-SafeCity-Delivery, or "" for robots
    body: dict
    valid: bool  # signature and shape as the real service checks them
    at: float = field(default_factory=time.monotonic)

    @property
    def alert_ids(self) -> list[str]:
        return [a["alert_id"] for a in self.body.get("alerts", [])]


class HttpReceivers:
    """``/hook/<name>`` webhooks (``/fail`` answers 500), ``/ding``, ``/wecom``, ``/feishu`` robots."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> HttpReceivers:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook/{name}", self._webhook)
        app.router.add_post("/fail", self._fail)
        app.router.add_post("/ding", self._dingtalk)
        app.router.add_post("/wecom", self._wecom)
        app.router.add_post("/feishu", self._feishu)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def _keep(self, item: Received) -> None:
        with self.lock:
            self.received.append(item)

    def where(self, path_prefix: str = "", alert_id: str | None = None) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path.startswith(path_prefix)
                    and (alert_id is None or alert_id in r.alert_ids or alert_id in json.dumps(r.body))]

    async def _webhook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), raw, hashlib.sha256).hexdigest()
        valid = hmac.compare_digest(request.headers.get("X-SafeCity-Signature", ""), expected)
        self._keep(Received(request.path, request.headers.get("X-SafeCity-Delivery", ""), json.loads(raw), valid))
        return web.json_response({"ok": True})

    async def _fail(self, request: web.Request) -> web.Response:
        return web.Response(status=500)

    async def _dingtalk(self, request: web.Request) -> web.Response:
        body = await request.json()
        ts, sign = request.query.get("timestamp", ""), request.query.get("sign", "")
        digest = hmac.new(DINGTALK_SECRET.encode(), f"{ts}\n{DINGTALK_SECRET}".encode(), hashlib.sha256).digest()
        valid = (request.query.get("access_token") == "ding-token" and sign == base64.b64encode(digest).decode()
                 and abs(time.time() * 1000 - int(ts or 0)) < 3600_000 and body.get("msgtype") == "markdown"
                 and {"title", "text"} <= set(body.get("markdown", {})))
        self._keep(Received(request.path, "", body, valid))
        return web.json_response({"errcode": 0 if valid else 310000, "errmsg": "ok" if valid else "sign not match"})

    async def _wecom(self, request: web.Request) -> web.Response:
        body = await request.json()
        valid = (request.query.get("key") == "wecom-key" and body.get("msgtype") == "markdown"
                 and bool(body.get("markdown", {}).get("content")))
        self._keep(Received(request.path, "", body, valid))
        return web.json_response({"errcode": 0 if valid else 40008, "errmsg": "ok"})

    async def _feishu(self, request: web.Request) -> web.Response:
        body = await request.json()
        ts = body.get("timestamp", "0")
        digest = hmac.new(f"{ts}\n{FEISHU_SECRET}".encode(), b"", hashlib.sha256).digest()
        valid = (body.get("sign") == base64.b64encode(digest).decode() and body.get("msg_type") == "text"
                 and bool(body.get("content", {}).get("text")))
        self._keep(Received(request.path, "", body, valid))
        return web.json_response({"code": 0 if valid else 19021, "msg": "success" if valid else "sign match fail"})


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        msg = message_from_bytes(envelope.content, policy=email_policy)
        with self.lock:
            self.messages.append((envelope.rcpt_tos, msg))
        return "250 OK"


class SmtpReceiver:
    def __init__(self, port: int) -> None:
        self.box = _Mailbox()
        self.controller = Controller(self.box, hostname="127.0.0.1", port=port)

    def start(self) -> SmtpReceiver:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def where(self, text: str) -> list:
        with self.box.lock:
            return [(to, m) for to, m in self.box.messages if text in m.get_content() or text in str(m["Subject"])]
