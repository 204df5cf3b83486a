"""`safecity console`: the operator console, one aiohttp process in front of the alert API.

The browser signs in with a name and password; the console keeps nothing of its own: sessions are
in the alert store, and every read and action is a call to the alert API with the session's token
as the bearer, so roles, illegal steps and the audit trail are the API's, exactly as for the CLI.
Live changes come from the alert-state topics on MQTT (``console.live``); evidence pictures are read
back from Kafka (``alerting.evidence``); devices from the registry and InfluxDB (``console.devices``).

::

    GET  /                       the console (one page: board, alert, map, devices, admin)
    GET  /login                  the sign-in page
    POST /console/api/signin     {"name", "password"} + X-Requested-With: safecity-console
    POST /console/api/signout
    GET  /console/api/me         {"name", "role", "csrf", "expires_at"}
    GET  /console/api/alerts?status=&type=&district=&limit=     the board's rows
    GET  /console/api/alerts/{id}            {"current": row, "episodes": [records], "image": bool}
    GET  /console/api/alerts/{id}/image      the evidence picture (JPEG)
    POST /console/api/alerts/{id}/actions    as the API; X-CSRF-Token
    POST /console/api/alerts/{id}/subject    a person lead's guest (supervisor, audited); X-CSRF-Token
    GET  /console/api/devices                every registered device with its state
    GET  /console/api/map                    devices, open alerts, tile URL and district outlines
    GET  /console/api/events                 server-sent events: {"alert_id", "version"} | {"resync"}
    GET|POST /console/api/users              (admin) list | add or change a user (password hashed here)
    POST /console/api/watchlists/{kind}      (admin) a list file, passed on to the API's import
    GET  /healthz
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import urllib.parse
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import msgspec
from aiohttp import web

from alerting import evidence
from alerting.channels import message_record
from alerting.lifecycle import AlertRecord
from alerting.store import ROLES, AlertStore
from console import auth
from console.devices import STATES, DeviceView, Facts, device_facts, device_view
from console.live import AlertFeed
from models.registry import DeviceEntry
from models.settings import Settings
from safecity.registry import RegistryFile

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
COOKIE = "safecity_session"
PUBLIC = ("/login", "/static/", "/healthz", "/console/api/signin")
CHANGES = ("POST", "PUT", "PATCH", "DELETE")
LEAD_IMAGE_TYPES = ("watchlist-vehicle", "watchlist-retro-hit")  # a plate read's snapshot (when it names one)
EVIDENCE_TIMEOUT_S = 20.0
FACTS_TTL_S = 5.0


def _json(data, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=str),
                             headers={"Cache-Control": "no-store"})


def _error(status: int, message: str, **extra) -> web.Response:
    return _json({"error": message, **extra}, status)


def row_of(record: dict) -> dict:
    """A board row from an API record: the same fields the alert service publishes on MQTT."""
    r = msgspec.convert(record, AlertRecord, strict=False)
    return json.loads(message_record(r))


def has_image(record: dict) -> bool:
    """A camera alert shows the camera's frame; a vehicle lead the checkpoint's snapshot."""
    if record["type"].startswith("camera-"):
        return True
    return record["type"] in LEAD_IMAGE_TYPES and bool(record.get("details", {}).get("read_id"))


class Console:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cfg = settings.console
        from alerting.service import store_url

        self.store = AlertStore(store_url(settings))
        self.registry = RegistryFile(settings.registry)
        self.throttle = auth.SigninThrottle(self.cfg.max_failed_signins, self.cfg.lockout_s)
        self.feed = AlertFeed(settings.mqtt)
        self.http: aiohttp.ClientSession | None = None
        self.images: OrderedDict[str, bytes] = OrderedDict()
        self._facts: tuple[float, dict] | None = None
        tiles = ""  # the map's tile server, the one other place images may come from
        if self.cfg.tile_url:
            parts = urllib.parse.urlsplit(self.cfg.tile_url)
            tiles = f" {parts.scheme}://{parts.netloc}"
        self.csp = ("default-src 'self'; img-src 'self' data: blob:" + tiles + "; style-src 'self'; "
                    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'")
        self.idle = timedelta(minutes=self.cfg.session_idle_min)
        self.longest = timedelta(hours=self.cfg.session_max_h)

    # ------------------------------------------------------------------ the alert API, as the user
    async def api(self, request: web.Request, method: str, path: str, body: bytes | None = None,
                  content_type: str = "application/json", stream=None) -> tuple[int, object]:
        headers = {"Authorization": f"Bearer {request['token']}", "Content-Type": content_type}
        url = self.settings.alerts.api_url.rstrip("/") + path
        try:
            async with self.http.request(method, url, data=stream if stream is not None else body,
                                         headers=headers) as resp:
                try:
                    return resp.status, await resp.json(content_type=None)
                except ValueError:
                    return resp.status, {"error": f"the alert API answered {resp.status}"}
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            logger.warning("alert API unreachable: %s", type(exc).__name__)
            return 502, {"error": "the alert service cannot be reached; try again in a moment"}

    # ------------------------------------------------------------------ middleware
    @web.middleware
    async def guard(self, request: web.Request, handler):
        resp = await self._guarded(request, handler)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Content-Security-Policy", self.csp)
        return resp

    async def _guarded(self, request: web.Request, handler):
        if request.method in CHANGES and not auth.same_origin(request.headers.get("Origin"), request.host):
            return _error(403, "a change must come from the console's own page")
        if request.path.startswith(PUBLIC):
            return await handler(request)
        token = request.cookies.get(COOKIE)
        session = await asyncio.to_thread(self.store.session, token, datetime.now(UTC), self.idle) if token else None
        if session is None:
            if request.path.startswith("/console/api/"):
                return _error(401, "your session has ended: sign in again" if token else "sign in", signin=True)
            raise web.HTTPFound("/login")
        if request.method in CHANGES and not auth.csrf_ok(session["csrf"], request.headers.get("X-CSRF-Token")):
            return _error(403, "the page is out of date (no valid CSRF token): reload it")
        request["token"], request["session"] = token, session
        return await handler(request)

    # ------------------------------------------------------------------ pages and sign-in
    async def index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def login_page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "login.html", headers={"Cache-Control": "no-store"})

    async def signin(self, request: web.Request) -> web.Response:
        if request.headers.get("X-Requested-With") != "safecity-console":  # never a plain cross-site form post
            return _error(403, "sign in from the console's page")
        try:
            body = await request.json()
            name, password = str(body["name"])[:64], str(body["password"])[:1024]
        except (ValueError, KeyError, TypeError):
            return _error(400, "name and password, please")
        wait = self.throttle.locked(name)
        if wait:
            return _error(429, f"too many failed sign-ins: try again in {wait:.0f} s")
        found = await asyncio.to_thread(self.store.password_hash, name)
        ok, rehash = await asyncio.to_thread(auth.verify_password, found[0] if found else None, password)
        if not ok:
            self.throttle.failed(name)
            logger.info("failed sign-in")  # never the name typed: it may be a password typed in the wrong box
            return _error(401, "wrong name or password")
        self.throttle.succeeded(name)
        if rehash:
            await asyncio.to_thread(self.store.set_password_hash, name, rehash)
        token, csrf, now = auth.new_token(), auth.new_token(), datetime.now(UTC)
        await asyncio.to_thread(self.store.open_session, name, token, csrf, now, self.idle, self.longest)
        logger.info("%s signed in", name)
        resp = _json({"name": name, "role": found[1], "csrf": csrf})
        resp.set_cookie(COOKIE, token, httponly=True, samesite="Strict", secure=self.cfg.secure_cookies, path="/",
                        max_age=int(self.longest.total_seconds()))
        return resp

    async def signout(self, request: web.Request) -> web.Response:
        await asyncio.to_thread(self.store.close_session, request["token"])
        resp = _json({"signed_out": True})
        resp.del_cookie(COOKIE, path="/")
        return resp

    async def me(self, request: web.Request) -> web.Response:
        s = request["session"]
        return _json({"name": s["name"], "role": s["role"], "csrf": s["csrf"], "expires_at": s["expires_at"],
                      "map": {"tile_url": self.cfg.tile_url}})

    # ------------------------------------------------------------------ alerts
    async def alerts(self, request: web.Request) -> web.Response:
        q = {k: v for k, v in request.query.items() if k in ("status", "type", "district", "since", "limit")}
        q.setdefault("status", "firing,acknowledged")
        status, body = await self.api(request, "GET", "/api/v1/alerts?" + urllib.parse.urlencode(q))
        if status != 200:
            return _json(body, status)
        return _json([row_of(r) | {"image": has_image(r)} for r in body])

    async def _episodes(self, request: web.Request) -> tuple[int, object]:
        alert_id = urllib.parse.quote(request.match_info["alert_id"], safe="")
        return await self.api(request, "GET", f"/api/v1/alerts/{alert_id}")

    async def alert(self, request: web.Request) -> web.Response:
        status, episodes = await self._episodes(request)
        if status != 200:
            return _json(episodes, status)
        current = episodes[-1]
        return _json({"current": row_of(current) | {"image": has_image(current)}, "episodes": episodes})

    async def image(self, request: web.Request) -> web.StreamResponse:
        status, episodes = await self._episodes(request)
        if status != 200:
            return _json(episodes, status)
        r = episodes[-1]
        if not has_image(r):
            return _error(404, "this alert has no picture")
        key = f"{r['alert_id']}|{r['since']}"
        jpeg = self.images.get(key)
        if jpeg is None:
            try:
                jpeg = await asyncio.wait_for(self._find_image(r), EVIDENCE_TIMEOUT_S)
            except asyncio.TimeoutError:
                return _error(504, "the picture could not be read from the event log in time")
            if jpeg is None:
                return _error(410, "the picture is no longer kept (the event log's retention ended)")
            self.images[key] = jpeg
            while len(self.images) > 64:
                self.images.popitem(last=False)
        return web.Response(body=jpeg, content_type="image/jpeg" if jpeg[:2] == b"\xff\xd8" else "image/png",
                            headers={"Cache-Control": "private, max-age=300"})

    async def _find_image(self, r: dict) -> bytes | None:
        d = r.get("details", {})
        kafka = self.settings.kafka
        if r["type"].startswith("camera-"):
            return await evidence.camera_frame(kafka, r["device_id"], datetime.fromisoformat(r["first_seen"]))
        seen = datetime.fromisoformat(d["seen_at"] if isinstance(d.get("seen_at"), str) else r["first_seen"])
        return await evidence.plate_snapshot(kafka, r["device_id"], str(d["read_id"]), seen)

    async def act(self, request: web.Request) -> web.Response:
        alert_id = urllib.parse.quote(request.match_info["alert_id"], safe="")
        status, body = await self.api(request, "POST", f"/api/v1/alerts/{alert_id}/actions", await request.read())
        return _json(body, status)

    async def subject(self, request: web.Request) -> web.Response:
        alert_id = urllib.parse.quote(request.match_info["alert_id"], safe="")
        status, body = await self.api(request, "POST", f"/api/v1/alerts/{alert_id}/subject", await request.read())
        resp = _json(body, status)
        resp.headers["Cache-Control"] = "no-store"
        return resp

    # ------------------------------------------------------------------ devices and map
    async def _open_alerts(self, request: web.Request) -> list[dict] | web.Response:
        status, body = await self.api(request, "GET", "/api/v1/alerts?status=firing,acknowledged&limit=5000")
        return body if status == 200 else _json(body, status)

    async def _device_views(self, request: web.Request) -> list | web.Response:
        open_alerts = await self._open_alerts(request)
        if isinstance(open_alerts, web.Response):
            return open_alerts
        loop = asyncio.get_running_loop()
        if self._facts is None or loop.time() - self._facts[0] > FACTS_TTL_S:
            try:
                facts = await asyncio.to_thread(device_facts, self.settings.influx)
            except (OSError, RuntimeError) as exc:
                logger.warning("InfluxDB unreachable for the devices page: %s", exc)
                facts = {}
            self._facts = (loop.time(), facts)
        facts = self._facts[1]
        await asyncio.to_thread(self.registry.refresh)
        by_device: dict[str, list[dict]] = {}
        for a in open_alerts:
            by_device.setdefault(a["device_id"], []).append(a)
        now = datetime.now(UTC)
        entries: dict[str, DeviceEntry] = self.registry.entries
        return [device_view(e, facts.get(e.id, Facts()), by_device.get(e.id, []), now) for e in entries.values()]

    async def devices(self, request: web.Request) -> web.Response:
        views = await self._device_views(request)
        if isinstance(views, web.Response):
            return views
        order = {s: i for i, s in enumerate(STATES)}
        views.sort(key=lambda v: (order[v.state], v.kind, v.id))
        return _json({"states": list(STATES), "devices": [_asdict(v) for v in views]})

    async def map(self, request: web.Request) -> web.Response:
        views = await self._device_views(request)
        if isinstance(views, web.Response):
            return views
        outlines = None
        if self.cfg.districts_geojson:
            try:
                outlines = json.loads(Path(self.cfg.districts_geojson).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                logger.warning("district outlines unreadable: %s", exc)
        return _json({"tile_url": self.cfg.tile_url, "districts": outlines,
                      "devices": [_asdict(v) for v in views if v.lat is not None and v.lon is not None],
                      "unplaced": sum(1 for v in views if v.lat is None or v.lon is None)})

    # ------------------------------------------------------------------ live events
    async def events(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        q = self.feed.listen()
        try:
            await resp.write(b"retry: 2000\n\n")
            while self.feed.listening(q):
                try:
                    event = await asyncio.wait_for(q.get(), 15)
                except asyncio.TimeoutError:
                    await resp.write(b": keep-alive\n\n")
                    if await asyncio.to_thread(self.store.session, request["token"], datetime.now(UTC),
                                               self.idle) is None:
                        await resp.write(b"event: signout\ndata: {}\n\n")
                        break
                    continue
                await resp.write(f"data: {json.dumps(event)}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.feed.unlisten(q)
        return resp

    # ------------------------------------------------------------------ admin
    async def users(self, request: web.Request) -> web.Response:
        if request.method == "GET":
            status, body = await self.api(request, "GET", "/api/v1/users")
            return _json(body, status)
        if request["session"]["role"] != "admin":  # refused before any password is hashed (the API checks again)
            return _error(403, "only an admin manages users")
        try:
            body = await request.json()
            name, role, password = str(body["name"]), str(body["role"]), str(body.get("password") or "")
        except (ValueError, KeyError, TypeError):
            return _error(400, "name, role and password, please")
        if role not in ROLES:
            return _error(400, f"role must be one of {', '.join(ROLES)}")
        problem = auth.password_problem(name, password)
        if problem:
            return _error(400, problem)
        digest = await asyncio.to_thread(auth.hash_password, password)
        status, out = await self.api(request, "POST", "/api/v1/users",
                                     json.dumps({"name": name, "role": role, "password_hash": digest}).encode())
        if status == 200 and isinstance(out, dict):
            out.pop("token", None)  # an API token is for the CLI: a console user signs in with the password
        return _json(out, status)

    async def import_list(self, request: web.Request) -> web.Response:
        kind = urllib.parse.quote(request.match_info["kind"], safe="")
        source = urllib.parse.urlencode({"source": request.query.get("source", "console upload")[:200]})
        status, body = await self.api(request, "POST", f"/api/v1/watchlists/{kind}/import?{source}",
                                      content_type="text/csv", stream=request.content)
        return _json(body, status)

    async def health(self, request: web.Request) -> web.Response:
        live = self.feed.connected.is_set()  # without MQTT the boards are not live: not healthy
        return _json({"ok": live, "mqtt": live}, 200 if live else 503)

    # ------------------------------------------------------------------ the application
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.guard], client_max_size=64 * 1024)
        r = app.router
        r.add_get("/", self.index)
        r.add_get("/login", self.login_page)
        r.add_static("/static/", STATIC, append_version=False)
        r.add_get("/healthz", self.health)
        r.add_post("/console/api/signin", self.signin)
        r.add_post("/console/api/signout", self.signout)
        r.add_get("/console/api/me", self.me)
        r.add_get("/console/api/alerts", self.alerts)
        r.add_get("/console/api/alerts/{alert_id}", self.alert)
        r.add_get("/console/api/alerts/{alert_id}/image", self.image)
        r.add_post("/console/api/alerts/{alert_id}/actions", self.act)
        r.add_post("/console/api/alerts/{alert_id}/subject", self.subject)
        r.add_get("/console/api/devices", self.devices)
        r.add_get("/console/api/map", self.map)
        r.add_get("/console/api/events", self.events)
        r.add_get("/console/api/users", self.users)
        r.add_post("/console/api/users", self.users)
        r.add_post("/console/api/watchlists/{kind}", self.import_list)  # streamed: client_max_size does not apply
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, app: web.Application) -> None:
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=3600))
        self.feed.start()

    async def _stop(self, app: web.Application) -> None:
        self.feed.close()
        await self.http.close()
        self.store.close()


def _asdict(view: DeviceView) -> dict:
    return dataclasses.asdict(view)


def run(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM."""
    console = Console(settings)
    console.store.migrate()
    print(f"console: http://{settings.console.host}:{settings.console.port}/", flush=True)
    web.run_app(console.app(), host=settings.console.host, port=settings.console.port, access_log=None,
                print=None, handle_signals=True)
