"""The alert API (aiohttp), used by the CLI and by the console.

Every request carries ``Authorization: Bearer <token>`` (``safecity alert user add``); actions are
attributed to that user, never to a name the client chooses. Roles: ``operator`` may read,
acknowledge and comment; ``supervisor`` also assigns, resolves, confirms and rejects; ``admin`` all,
and changes the watch lists.

::

    GET  /api/v1/alerts?status=firing,acknowledged&type=gas-*&district=xuhui&since=ISO&limit=200
    GET  /api/v1/alerts/{alert_id}                 every episode of the alert, newest last
    POST /api/v1/alerts/{alert_id}/actions         {"action": "ack", "reason": "...", "assignee": "..."}
         200 the record | 400 bad body | 401 no user | 403 role | 404 no alert | 409 illegal step
    POST /api/v1/alerts/{alert_id}/subject         {"reason": "..."}: a person lead's guest (supervisor;
         audited first) | 403 | 404 | 409 not a person lead | 410 no longer kept
    POST /api/v1/watchlists/{kind}/import?source=NAME    body: the CSV file (admin)
         200 {"count", "total", "sha256", "by", ...} | 400 not a valid list (rows and fields named)
    DELETE /api/v1/watchlists/{kind}/entries/{entry_id}  {"reason": "..."} (admin)
    GET  /api/v1/users                             (admin) names, roles, whether they have a password
    POST /api/v1/users  {"name", "role", "password_hash"}  (admin; audited) add a user or change one:
         200 {"name", "role", "token"} (the new API token, shown once)
    GET  /healthz
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import uuid
from datetime import UTC, datetime
from typing import Annotated

import msgspec
from aiohttp import web

from alerting.lifecycle import ActionKind, AlertAction, AlertRecord, IllegalStep
from models.identity import personal_data_in
from models import schemas
from models.schemas import safe_reason
from safecity import operator

logger = logging.getLogger(__name__)

PERMITTED = {
    "operator": {ActionKind.ACK, ActionKind.COMMENT},
    "supervisor": {ActionKind.ACK, ActionKind.COMMENT, ActionKind.ASSIGN, ActionKind.RESOLVE, ActionKind.CONFIRM,
                   ActionKind.REJECT},
}
PERMITTED["admin"] = PERMITTED["supervisor"]


MAX_LIST_BYTES = 1 << 30  # 1 GiB: a few million entries


class ReasonBody(msgspec.Struct, forbid_unknown_fields=True):
    """Why: a deletion's or an opened record's reason, kept in the audit trail."""

    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class UserBody(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")]
    role: Annotated[str, msgspec.Meta(pattern=r"^(operator|supervisor|admin)$")]
    password_hash: Annotated[str, msgspec.Meta(pattern=r"^\$argon2id\$", max_length=200)] | None = None


class ActionBody(msgspec.Struct, forbid_unknown_fields=True):
    action: ActionKind
    reason: str = ""
    assignee: str = ""
    action_id: str = ""


def record_json(r: AlertRecord) -> dict:
    return msgspec.to_builtins(msgspec.structs.replace(r, recent=())) | {"open": r.open}


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def reason_of(request: web.Request, refer_to: str) -> tuple[str, web.Response | None]:
    """The request's required reason (``{"reason": "..."}``), or the refusal: missing, or carrying
    personal data (the audit trail keeps it for good)."""
    try:
        body = msgspec.json.decode(await request.read(), type=ReasonBody)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return "", _error(400, f"say why: {safe_reason(str(exc))}")
    if found := personal_data_in(body.reason):
        return "", _error(400, f"the reason seems to contain {found}; it is kept in the audit trail for good: "
                               f"refer to the person by {refer_to}, never by name or number")
    return body.reason, None


def build_app(service) -> web.Application:
    store = service.store

    async def user(request: web.Request) -> tuple[str, str] | None:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return None
        return await service.call(store.user_by_token, auth.removeprefix("Bearer ").strip())

    @web.middleware
    async def authenticate(request: web.Request, handler):
        if request.path == "/healthz":
            return await handler(request)
        who = await user(request)
        if who is None:
            return _error(401, "sign in: Authorization: Bearer <token> (safecity alert user add)")
        request["user"], request["role"] = who
        return await handler(request)

    async def list_alerts(request: web.Request) -> web.Response:
        q = request.query
        try:
            since = datetime.fromisoformat(q["since"].replace("Z", "+00:00")) if q.get("since") else None
            limit = min(int(q.get("limit", "200")), 5000)
        except ValueError:
            return _error(400, "since must be an ISO time with a zone; limit a number")
        if since is not None and since.tzinfo is None:
            return _error(400, "since must carry a time zone")
        status = [s for s in q.get("status", "").split(",") if s]
        records = await service.call(lambda: store.search(status, q.get("type"), q.get("district"), since, limit))
        return web.json_response([record_json(r) for r in records])

    async def show_alert(request: web.Request) -> web.Response:
        episodes = await service.call(store.episodes, request.match_info["alert_id"])
        if not episodes:
            return _error(404, f"no alert {request.match_info['alert_id']!r}")
        return web.json_response([record_json(r) for r in episodes])

    async def act(request: web.Request) -> web.Response:
        try:
            body = msgspec.json.decode(await request.read(), type=ActionBody)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            return _error(400, f"bad action: {safe_reason(str(exc))}")
        if body.action not in PERMITTED.get(request["role"], set()):
            article = "an" if request["role"][0] in "aeiou" else "a"
            return _error(403, f"{article} {request['role']} may not {body.action.value}")
        for name, text in (("reason", body.reason), ("assignee", body.assignee)):
            found = personal_data_in(text)
            if found:  # the audit trail keeps it for good: refer to people by alert or registration id
                return _error(400, f"the {name} seems to contain {found}; refer to a person by the alert or "
                                   f"registration id, never by name or number")
        action = AlertAction(action=body.action, alert_id=request.match_info["alert_id"], by=request["user"],
                             at=datetime.now(UTC), action_id=body.action_id or uuid.uuid4().hex,
                             assignee=body.assignee[:64], reason=body.reason[:500])
        try:
            record = await service.act(action)
        except IllegalStep as exc:
            return _error(404 if str(exc).startswith("no alert") else 409, str(exc))
        logger.info("%s: %s %s", request["user"], body.action.value, action.alert_id)
        return web.json_response(record_json(record))

    async def import_list(request: web.Request) -> web.Response:
        """An admin's watch-list file, streamed to a private file and published by a separate, niced
        process (`safecity watchlist publish`): parsing a million entries never holds up the alerts."""
        if request["role"] != "admin":
            return _error(403, "only an admin imports watch lists")
        kind = request.match_info["kind"]
        if kind not in operator.LIST_TOPICS:
            return _error(404, "kind must be vehicles or persons")
        source = request.query.get("source", "upload")[:200]
        uploads = service.settings.services.run_dir / "uploads"
        uploads.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = uploads / f"{uuid.uuid4().hex}.csv"
        try:
            size = 0
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as fh:
                async for chunk in request.content.iter_chunked(1 << 20):
                    size += len(chunk)
                    if size > MAX_LIST_BYTES:
                        return _error(413, f"a list file may have at most {MAX_LIST_BYTES >> 20} MiB")
                    fh.write(chunk)
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "safecity.cli", "watchlist", "publish", str(path), "--kind", kind,
                "--by", request["user"], "--source", source, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, preexec_fn=lambda: os.nice(10))
            out, err = await proc.communicate()
        finally:
            path.unlink(missing_ok=True)
        if proc.returncode == 2:  # the file is not a valid list: the reason names rows and fields, not values
            reason = err.decode(errors="replace").strip().splitlines()[-1].removeprefix("error: ")
            return _error(400, reason.replace(f"{path}: ", ""))  # the server's file name is nobody's business
        if proc.returncode != 0:
            logger.error("watch-list publish failed (exit %s)", proc.returncode)
            return _error(500, "the list could not be published; nothing is lost: import it again")
        summary = json.loads(out)
        logger.info("%s: imported %d %s entries", request["user"], summary["count"], kind)
        return web.json_response(summary)

    async def delete_entry(request: web.Request) -> web.Response:
        if request["role"] != "admin":
            return _error(403, "only an admin changes watch lists")
        kind = request.match_info["kind"]
        if kind not in operator.LIST_TOPICS:
            return _error(404, "kind must be vehicles or persons")
        reason, refused = await reason_of(request, "the entry id")
        if refused:
            return refused
        audit = await asyncio.to_thread(operator.delete_entry, service.settings, kind,
                                        request.match_info["entry_id"], request["user"], reason)
        return web.json_response({"deleted": audit.target, "kind": kind, "by": audit.by})

    async def open_subject(request: web.Request) -> web.Response:
        """Show a person lead's guest to a supervisor (the console's "show the guest"): audited with
        the reason before anything is opened; never logged."""
        if request["role"] not in ("supervisor", "admin"):
            return _error(403, "only a supervisor opens a guest's record")
        reason, refused = await reason_of(request, "the alert id")
        if refused:
            return refused
        from alerting.service import NotAPersonLead

        try:
            subject = await service.open_subject(request.match_info["alert_id"], request["user"], reason)
        except IllegalStep as exc:
            return _error(404, str(exc))
        except NotAPersonLead as exc:
            return _error(409, str(exc))
        if subject is None:
            return _error(410, "the registration is no longer kept (SAFECITY_KAFKA__PERSONAL_RETENTION_H)")
        logger.info("%s opened the subject of %s", request["user"], request.match_info["alert_id"])
        return web.json_response(subject)

    async def list_users(request: web.Request) -> web.Response:
        if request["role"] != "admin":
            return _error(403, "only an admin manages users")
        return web.json_response(await service.call(store.list_users), dumps=lambda d: json.dumps(d, default=str))

    async def put_user(request: web.Request) -> web.Response:
        """Add a user or change one's role (and password: a hash made by the console, never the
        password itself); audited first. The user's sessions end; a new API token is returned once."""
        if request["role"] != "admin":
            return _error(403, "only an admin manages users")
        try:
            body = msgspec.json.decode(await request.read(), type=UserBody)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            return _error(400, f"bad user: {safe_reason(str(exc))}")
        if body.name == request["user"] and body.role != "admin":
            return _error(409, "an admin cannot take away their own admin role")
        await service.audit.append(schemas.AuditRecord(
            action="user-set", by=request["user"], at=datetime.now(UTC), target=body.name,
            detail=f"role={body.role}" + (" password=new" if body.password_hash else "")))
        token = await service.call(lambda: store.add_user(body.name, body.role, datetime.now(UTC),
                                                          body.password_hash))
        logger.info("%s set user %s (%s)", request["user"], body.name, body.role)
        return web.json_response({"name": body.name, "role": body.role, "token": token})

    async def health(request: web.Request) -> web.Response:  # the same report as the health endpoint
        report = service.health.report()
        return web.json_response(report, status=200 if report["ok"] else 503)

    app = web.Application(middlewares=[authenticate], client_max_size=64 * 1024)
    app.router.add_get("/healthz", health)
    app.router.add_get("/api/v1/alerts", list_alerts)
    app.router.add_get("/api/v1/alerts/{alert_id}", show_alert)
    app.router.add_post("/api/v1/alerts/{alert_id}/actions", act)
    app.router.add_post("/api/v1/alerts/{alert_id}/subject", open_subject)
    app.router.add_post("/api/v1/watchlists/{kind}/import", import_list)
    app.router.add_delete("/api/v1/watchlists/{kind}/entries/{entry_id}", delete_entry)
    app.router.add_get("/api/v1/users", list_users)
    app.router.add_post("/api/v1/users", put_user)
    return app


async def serve_api(service) -> web.AppRunner:
    runner = web.AppRunner(build_app(service), access_log=None)
    await runner.setup()
    a = service.settings.alerts
    await web.TCPSite(runner, a.api_host, a.api_port).start()
    return runner
