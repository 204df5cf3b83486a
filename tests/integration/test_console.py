"""The console's HTTP interface on the real stack: sign-in and sessions, every alert action through
it with each refusal (wrong role, unknown alert, illegal step, missing CSRF token, foreign origin,
expired session), user management, devices and map. The browser itself: test_console_browser."""

from __future__ import annotations

import http.cookiejar
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from alerting.store import AlertStore, sessions
from models import schemas, topics
from tests.integration.harness import kafka_records, poll, retained
from tests.integration.test_alerting import QUIET, leak

pytestmark = pytest.mark.integration


class Client:
    """A browser's side of the console's HTTP interface: cookies, the CSRF token, its own origin."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.csrf = ""
        self.headers: dict[str, str] = {}

    def call(self, method: str, path: str, body=None, headers: dict | None = None, csrf: bool = True,
             raw: bool = False) -> tuple[int, object]:
        h = {"Content-Type": "application/json", "Origin": self.base} | (headers or {})
        if csrf and method != "GET":
            h["X-CSRF-Token"] = self.csrf
        data = json.dumps(body).encode() if body is not None else (b"" if method != "GET" else None)
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            with self.opener.open(req, timeout=60) as resp:
                self.headers = dict(resp.headers)
                return resp.status, (resp.read() if raw else json.loads(resp.read() or b"null"))
        except urllib.error.HTTPError as exc:
            self.headers = dict(exc.headers)
            return exc.code, json.loads(exc.read() or b"null")

    def signin(self, name: str, password: str, **kw) -> tuple[int, object]:
        status, body = self.call("POST", "/console/api/signin", {"name": name, "password": password},
                                 headers={"X-Requested-With": "safecity-console"} | kw.pop("headers", {}),
                                 csrf=False, **kw)
        if status == 200:
            self.csrf = body["csrf"]
        return status, body

    def token(self) -> str:
        return next(c.value for c in self.jar if c.name == "safecity_session")

    def act(self, alert_id: str, action: str, **body) -> tuple[int, dict]:
        return self.call("POST", f"/console/api/alerts/{urllib.parse.quote(alert_id, safe='')}/actions",
                         {"action": action, **body})


def signed_in(console, role: str) -> Client:
    c = Client(console.url)
    assert c.signin(*console.users[role])[0] == 200
    return c


def test_sign_in_sessions_and_their_end(console, settings):
    anon = Client(console.url)
    assert anon.call("GET", "/console/api/me") == (401, {"error": "sign in", "signin": True})
    with anon.opener.open(console.url + "/", timeout=30) as resp:  # the page sends a stranger to sign in
        assert resp.url.endswith("/login")
    name, password = console.users["operator"]
    assert anon.signin(name, password, headers={"X-Requested-With": ""})[0] == 403  # a plain cross-site form
    assert anon.signin(name, password, headers={"Origin": "https://evil.example"})[0] == 403
    assert anon.signin(name, "wrong-password-123") == (401, {"error": "wrong name or password"})
    assert anon.signin("nobody-at-all", password) == (401, {"error": "wrong name or password"})

    status, me = anon.signin(name, password)
    assert status == 200 and me["role"] == "operator"
    cookie = anon.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and anon.token() not in json.dumps(me)
    status, me = anon.call("GET", "/console/api/me")
    assert (status, me["name"], me["role"], me["csrf"]) == (200, name, "operator", anon.csrf)

    # the session's token is a bearer for the alert API too (the console acts through it), until it ends
    api = urllib.request.Request(settings.alerts.api_url + "/api/v1/alerts?limit=1",
                                 headers={"Authorization": f"Bearer {anon.token()}"})
    with urllib.request.urlopen(api, timeout=30) as resp:
        assert resp.status == 200
    store = AlertStore(settings.alerts.db_url.get_secret_value())
    try:
        with store.engine.begin() as conn:  # the shift is over: the idle deadline has passed
            conn.execute(sessions.update().where(sessions.c.user_name == name)
                         .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    finally:
        store.close()
    assert anon.call("GET", "/console/api/me") == (401, {"error": "your session has ended: sign in again",
                                                         "signin": True})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(api, timeout=30)
    assert refused.value.code == 401

    again = signed_in(console, "operator")
    assert again.call("POST", "/console/api/signout")[0] == 200
    assert again.call("GET", "/console/api/me")[0] == 401


def test_failed_sign_ins_lock_the_name_out(console, stack_env):
    import subprocess
    import sys

    name, password = f"locked-{uuid.uuid4().hex[:4]}", f"pw-{uuid.uuid4().hex}"
    subprocess.run([sys.executable, "-m", "safecity.cli", "console", "user", name, "--password-stdin"],
                   input=password + "\n", env=stack_env, capture_output=True, text=True, check=True)
    c = Client(console.url)
    for _ in range(3):  # the console's limit in this session
        assert c.signin(name, "not-the-password")[0] == 401
    status, body = c.signin(name, password)  # even the right password, for the lockout's length
    assert status == 429 and "too many failed sign-ins" in body["error"]
    assert signed_in(console, "operator").call("GET", "/console/api/me")[0] == 200  # others are not locked out


def test_every_action_through_the_console_with_its_refusals(console, settings, registry):
    sensor = registry.add("gas", lat=31.21, lon=121.52, district="east", **QUIET)
    client = leak(settings, sensor)
    alert_id = f"gas-level-1:{sensor}"
    op, sup = signed_in(console, "operator"), signed_in(console, "supervisor")
    op_name, sup_name = console.users["operator"][0], console.users["supervisor"][0]
    try:
        def listed():
            status, rows = op.call("GET", "/console/api/alerts?type=gas-*")
            return next((r for r in rows if r["alert_id"] == alert_id), None) if status == 200 else None

        row = poll(listed, 60, "the gas alarm on the board")
        assert (row["status"], row["severity"], row["district"], row["image"]) == ("firing", "high", "east", False)

        status, body = op.call("POST", f"/console/api/alerts/{alert_id}/actions", {"action": "ack"}, csrf=False)
        assert (status, body["error"]) == (403, "the page is out of date (no valid CSRF token): reload it")
        status, body = op.call("POST", f"/console/api/alerts/{alert_id}/actions", {"action": "ack"},
                               headers={"Origin": "https://evil.example"})
        assert status == 403
        assert op.act(alert_id, "resolve")[0] == 403  # an operator may not resolve
        assert op.act(alert_id, "assign", assignee="x")[0] == 403
        assert op.act("gas-level-1:no-such-sensor", "ack")[0] == 404
        status, body = op.act(alert_id, "comment", reason="guest 110105194912310021 called")
        assert status == 400 and "ID number" in body["error"]
        assert op.call("POST", f"/console/api/alerts/{alert_id}/subject", {"reason": "x"})[0] == 403

        status, record = op.act(alert_id, "ack", reason="on my way")
        assert (status, record["status"], record["acknowledged_by"]) == (200, "acknowledged", op_name)
        state = poll(lambda: next((v for v in retained(settings, f"{topics.PREFIX}/alerts/#").values()
                                   if v["alert_id"] == alert_id and v["status"] == "acknowledged"), None),
                     30, "the acknowledgement on MQTT")
        assert state["acknowledged_by"] == op_name

        assert sup.act(alert_id, "confirm")[0] == 409  # a gas alarm is not a lead to confirm
        status, body = sup.call("POST", f"/console/api/alerts/{alert_id}/subject", {"reason": "checking"})
        assert status == 409
        assert sup.act(alert_id, "assign", assignee=op_name)[1]["assignee"] == op_name
        status, record = sup.act(alert_id, "resolve", reason="valve closed, ventilated")
        assert (status, record["status"], record["closed_by"]) == (200, "resolved", sup_name)
        assert sup.act(alert_id, "ack")[0] == 409  # closed: nothing left to acknowledge

        status, shown = op.call("GET", f"/console/api/alerts/{alert_id}")
        steps = [(s["change"], s["by"]) for s in shown["episodes"][-1]["steps"]]
        assert steps == [("opened", "system"), ("acknowledged", op_name), ("assigned", sup_name),
                         ("resolved", sup_name)]
        assert shown["current"]["status"] == "resolved"

        def audited():
            got = {(a.action, a.by, a.target) for a in (schemas.decode_as(schemas.AuditRecord, r.value) for r in
                   kafka_records(settings, topics.KAFKA_AUDIT, lambda k, v: alert_id.encode() in v, timeout=5))}
            return got if {("alert-ack", op_name, alert_id), ("alert-resolve", sup_name, alert_id)} <= got else None

        poll(audited, 60, "the console's actions in the audit trail")
    finally:
        client.close()


def test_an_admin_manages_users_and_nobody_else_does(console, settings):
    op, admin = signed_in(console, "operator"), signed_in(console, "admin")
    new = f"night-{uuid.uuid4().hex[:4]}"
    assert op.call("GET", "/console/api/users")[0] == 403
    assert op.call("POST", "/console/api/users", {"name": new, "role": "admin", "password": "a-long-passw0rd"})[0] == 403
    status, body = admin.call("POST", "/console/api/users", {"name": new, "role": "supervisor", "password": "short"})
    assert status == 400 and "12 characters" in body["error"]
    status, body = admin.call("POST", "/console/api/users", {"name": new, "role": "supervisor",
                                                             "password": "tram-lantern-42-quiet"})
    assert (status, body) == (200, {"name": new, "role": "supervisor"})  # no API token handed to a browser
    status, users = admin.call("GET", "/console/api/users")
    assert {"name": new, "role": "supervisor", "password": True} in [
        {k: u[k] for k in ("name", "role", "password")} for u in users]
    assert "tram-lantern" not in json.dumps(users) and "argon2" not in json.dumps(users)
    assert Client(console.url).signin(new, "tram-lantern-42-quiet")[1]["role"] == "supervisor"
    admin_name = console.users["admin"][0]
    status, body = admin.call("POST", "/console/api/users", {"name": admin_name, "role": "operator",
                                                             "password": "tram-lantern-42-quiet"})
    assert status == 409  # an admin cannot lock the last door behind them

    def audited():
        got = [schemas.decode_as(schemas.AuditRecord, r.value)
               for r in kafka_records(settings, topics.KAFKA_AUDIT, lambda k, v: new.encode() in v, timeout=5)]
        return [a for a in got if a.action == "user-set" and a.by == admin_name] or None

    record = poll(audited, 60, "the new user in the audit trail")[0]
    assert record.detail == "role=supervisor password=new" and "tram" not in schemas.encode(record).decode()


def test_devices_and_map_show_the_registry_with_states(console, settings, registry):
    sensor = registry.add("gas", lat=31.24, lon=121.53, district="east", site="depot-9", **QUIET)
    unplaced = registry.add("hotel", district="east")
    client = leak(settings, sensor, values=(30.0, 31.0))
    sup = signed_in(console, "supervisor")
    try:
        def device(device_id: str):
            status, body = sup.call("GET", "/console/api/devices")
            assert status == 200
            return next((d for d in body["devices"] if d["id"] == device_id), None)

        # the state from the alert store, last seen from InfluxDB (written by the metrics writer, read by the
        # console at most every few seconds): both, once they have arrived
        view = poll(lambda: (d := device(sensor)) and d["state"] == "alarm" and d["last_seen"] and d, 60,
                    "the sensor in alarm, last seen")
        assert (view["kind"], view["district"], view["site"]) == ("gas", "east", "depot-9")
        assert [a["type"] for a in view["alerts"]] == ["gas-level-1"]
        assert device(unplaced)["state"] == "unknown"  # registered, never heard of

        status, body = sup.call("GET", "/console/api/map")
        placed = {d["id"] for d in body["devices"]}
        assert sensor in placed and unplaced not in placed and body["unplaced"] >= 1
        assert body["districts"]["features"][0]["properties"]["name"] == "east"
        assert placed == {d["id"] for d in registry.devices if d.get("lat") is not None}
    finally:
        client.close()


def test_a_camera_alerts_picture_is_the_cameras_last_frame_before_it(pipeline, settings, registry):
    """What the alert page shows for a camera alert, read back from the frames on Kafka."""
    import asyncio

    import cv2
    from skimage import data

    from alerting import evidence
    from devices.client import DeviceClient
    from models.schemas import CameraFrame
    from models.topics import DeviceKind, MessageKind

    camera = registry.add("camera", **QUIET)
    t0 = datetime.now(UTC) - timedelta(minutes=2)
    frames = [cv2.imencode(".jpg", image)[1].tobytes() for image in (data.camera(), data.coins(), data.moon())]
    client = DeviceClient(settings.mqtt, DeviceKind.CAMERA, camera).start()
    try:
        for i, jpeg in enumerate(frames):
            client.publish(MessageKind.FRAME, CameraFrame(camera_id=camera, seq=i, captured_at=t0 + timedelta(seconds=10 * i),
                                                          image=jpeg)).wait_for_publish(10)
        kafka_records(settings, topics.KAFKA_TOPICS[MessageKind.FRAME],
                      lambda k, v: k == camera.encode() and b'"seq":2' in v, timeout=60)
    finally:
        client.close()
    at = lambda seconds: asyncio.run(evidence.camera_frame(settings.kafka, camera, t0 + timedelta(seconds=seconds)))  # noqa: E731
    assert at(15) == frames[1]  # the last frame at or before the alert's time
    assert at(20) == frames[2] and at(0) == frames[0]
    assert at(-1) is None  # nothing the camera sent before then
