"""`safecity`: run the stages, the local services, the simulators and the demo."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import NoReturn

import typer

from models.settings import config_errors, load_settings

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="SafeCity Stream: city safety telemetry -> metrics and alerts.")
services_app = typer.Typer(no_args_is_help=True, help="Local Mosquitto, Kafka and InfluxDB (loopback only).")
app.add_typer(services_app, name="services")
gas_app = typer.Typer(no_args_is_help=True, help="Gas safety rules.")
app.add_typer(gas_app, name="gas")
camera_app = typer.Typer(no_args_is_help=True, help="Camera image health and simulated cameras.")
app.add_typer(camera_app, name="camera")


def _fail(message: str) -> NoReturn:
    """A usage or input error: the message on stderr, exit 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _registry(path: Path) -> dict:
    """The device registry file's entries (YAML or CSV), or exit 2 saying what is wrong with it."""
    from models.registry import RegistryError
    from safecity.registry import RegistryFile

    try:
        return RegistryFile(path).entries
    except (OSError, UnicodeDecodeError, RegistryError) as exc:
        _fail(f"{path}: {getattr(exc, 'strerror', None) or exc}")


def _logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


devices_app = typer.Typer(no_args_is_help=True, help="Broker users and access rules for the registry's devices.")
app.add_typer(devices_app, name="devices")


@devices_app.command("credentials")
def devices_credentials(
        out: Path = typer.Option(..., help="directory for passwd, acl and issued-<time>.csv (created 0700)"),
        registry: Path | None = typer.Option(None, help="device registry (default: SAFECITY_REGISTRY)"),
        rotate: list[str] = typer.Option([], help="issue a new password to this user (repeatable)")) -> None:
    """Write the broker's password file and ACL for every registry device and the services.

    Existing users keep their passwords; new or rotated ones get a random password, written once to
    issued-<time>.csv (0600). Service passwords come from MQTT_INGEST_PASSWORD, MQTT_ALERTER_PASSWORD and
    MQTT_DISPLAY_PASSWORD when set (as in .env). Reload the broker afterwards (SIGHUP)."""
    import csv
    import os
    from datetime import UTC, datetime

    from deploy import mosquitto_auth as auth

    path = registry or load_settings().registry
    if path is None:
        _fail("no registry: give --registry or set SAFECITY_REGISTRY")
    entries = _registry(path)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    passwd = out / "passwd"
    try:
        existing = auth.parse_passwd(passwd.read_text()) if passwd.exists() else {}
        env = {user: os.environ[var] for user, var in auth.SERVICE_PASSWORD_ENV.items() if os.environ.get(var)}
        creds = auth.credentials(entries.values(), existing, service_passwords=env, rotate=rotate)
        rules = auth.acl(entries.values(), source=path.name)
    except auth.CredentialsError as exc:
        _fail(str(exc))

    def write(target: Path, text: str) -> None:  # whole file or nothing, never readable by others
        tmp = target.with_name(f".{target.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, target)

    if creds.issued:
        issued = out / f"issued-{datetime.now(UTC):%Y%m%dT%H%M%S.%fZ}.csv"
        kinds = {e.id: e.kind for e in entries.values()}
        rows = [["user", "kind", "password"]] + [[u, kinds.get(u, "service"), p] for u, p in creds.issued.items()]
        with open(os.open(issued, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", newline="") as f:
            csv.writer(f).writerows(rows)
    write(passwd, auth.format_passwd(creds.users))
    write(out / "acl", rules)
    typer.echo(f"{len(creds.users)} users ({len(entries)} devices), {len(creds.issued)} new passwords"
               + (f" in {issued}" if creds.issued else "") + f", {len(creds.revoked)} revoked: {passwd}, {out / 'acl'}")
    typer.echo("hand the issued passwords to the devices, then delete the file; reload the broker (SIGHUP)")


@app.command("check-config")
def check_config() -> None:
    """Validate the SAFECITY_* environment; print every error with its variable."""
    errors = config_errors()
    for error in errors:
        typer.echo(error, err=True)
    if errors:
        raise typer.Exit(2)
    settings = load_settings()
    typer.echo(settings.model_dump_json(indent=2))


@services_app.command("install")
def services_install() -> None:
    """Install Mosquitto and InfluxDB (apt) and fetch the Kafka broker jars (Maven)."""
    from deploy import services

    settings = load_settings()
    _logging(settings.log_level)
    services.install_all(settings)


@services_app.command("start")
def services_start() -> None:
    """Start the local servers (waits until each answers)."""
    from deploy import services

    settings = load_settings()
    _logging(settings.log_level)
    for service in services.start_all(settings):
        typer.echo(f"{service.name}: PID {service.pid()} on {service.host}:{service.port}")


@services_app.command("stop")
def services_stop() -> None:
    """Stop the local servers by their PID files."""
    from deploy import services

    settings = load_settings()
    _logging(settings.log_level)
    services.stop_all(settings)


@services_app.command("status")
def services_status() -> None:
    from deploy import services

    for name, pid in services.status(load_settings()).items():
        typer.echo(f"{name}: {'PID ' + str(pid) if pid else 'stopped'}")


@app.command()
def ingest() -> None:
    """Run the MQTT -> Kafka bridge until SIGINT/SIGTERM."""
    from ingest import bridge

    settings = load_settings()
    _logging(settings.log_level)
    bridge.run(settings)


@app.command()
def worker() -> None:
    """Run a Faust stream-processing worker until SIGINT/SIGTERM."""
    from processors.app import run_worker

    run_worker(load_settings())


@app.command("metrics")
def metrics_writer() -> None:
    """Run the metrics writer (safecity.metrics.v1 -> InfluxDB) until SIGINT/SIGTERM."""
    from processors import metrics_writer as writer

    settings = load_settings()
    _logging(settings.log_level)
    writer.run(settings)


@app.command()
def simulate(checkpoints: int = 3, hotels: int = 5, gas_sensors: int = 12, rate: float = 1.0,
             malformed: float = typer.Option(0.0, help="fraction of malformed messages"),
             duration: float | None = typer.Option(None, help="seconds (default: until Ctrl-C)"),
             seed: int = 7) -> None:
    """Run simulated devices, each with its own MQTT connection."""
    from devices.fleet import FleetSpec, run_fleet

    settings = load_settings()
    _logging(settings.log_level)
    stop = threading.Event()
    spec = FleetSpec(checkpoints, hotels, gas_sensors, rate, malformed, seed)
    try:
        sent = run_fleet(settings.mqtt, spec, stop, duration)
    except KeyboardInterrupt:
        stop.set()
        return
    typer.echo(sent)


@app.command()
def demo(rate: float = typer.Option(2.0, help="device publishing rate multiplier"),
         duration: float | None = typer.Option(None, help="stop after this many seconds"),
         busy: bool = typer.Option(False, "--busy", help="incidents everywhere (load demos) instead of a calm city")
         ) -> None:
    """The whole pipeline on one machine: services, ingest, a worker, the alert service, simulators, live view."""
    from safecity.demo import run_demo

    raise typer.Exit(run_demo(load_settings(), rate=rate, duration=duration, busy=busy))


@gas_app.command("replay")
def gas_replay(file: Path = typer.Argument(..., help="CSV: time,sensor_id,gas,value,unit[,battery]"),
               interval: float = typer.Option(60.0, min=0.001, help="expected reporting interval, seconds"),
               registry: Path | None = typer.Option(None, help="device registry: also run site correlation"),
               site_window: float = typer.Option(300.0, min=1, help="site correlation window, seconds")) -> None:
    """Run the gas rules (default settings) over a recorded series; one JSON line per alert transition."""
    import json

    from processors import gas_replay
    from processors.rules.gas import GasConfig

    try:
        with open(file, newline="", encoding="utf-8") as fh:
            rows = gas_replay.read_rows(fh)
    except OSError as exc:
        return _fail(f"cannot read {file}: {exc.strerror}")
    except UnicodeDecodeError as exc:
        return _fail(f"{file}: not UTF-8 text (byte {exc.start})")
    except gas_replay.ReplayError as exc:
        return _fail(f"{file}: {exc}")
    sites = None
    if registry is not None:
        sites = {e.id: e.site for e in _registry(registry).values() if e.site}
    for alert in gas_replay.replay(rows, GasConfig(interval_s=interval), sites, site_window):
        typer.echo(json.dumps(gas_replay.as_line(alert)))


@camera_app.command("check")
def camera_check(image: Path = typer.Argument(..., help="JPEG or PNG"),
                 reference: Path | None = typer.Option(None, help="the camera's healthy view, for scene-changed")) -> None:
    """Run the single-image health checks (default settings); print one JSON object."""
    import json

    from processors.rules import image as im

    def load(path: Path):
        try:
            return im.decode_image(path.read_bytes())
        except OSError as exc:
            typer.echo(f"error: cannot read {path}: {exc.strerror}", err=True)
        except im.ImageError as exc:
            typer.echo(f"error: {path} is not a readable image ({exc.code}: {exc})", err=True)
        raise typer.Exit(2)

    frame = load(image)
    ref = im.gradient_fingerprint(load(reference)) if reference is not None else None
    health = im.check(frame, ref)
    typer.echo(json.dumps({"healthy": health.healthy, "problems": health.problems, "scores": health.scores}))


@camera_app.command("simulate")
def camera_simulate(source: Path = typer.Argument(..., help="a video file or a folder of images"),
                    camera_id: str = typer.Option("cam-001", help="device id (and MQTT client id)"),
                    fps: float = typer.Option(1.0, min=0.01, max=30), count: int | None = typer.Option(None),
                    tamper: list[str] = typer.Option([], help="KIND:FROM:TO frame indexes, e.g. cover:10:20; "
                                                             "kinds: cover spray blur move dark signal-loss freeze")) -> None:
    """Publish frames of a simulated camera over MQTT at ``fps``, tampered as scheduled."""
    import time
    from datetime import UTC, datetime

    from devices.camera import TAMPERS, SimulatedCamera, TamperWindow
    from devices.client import DeviceClient
    from models.topics import DeviceKind, MessageKind

    windows = []
    for spec in tamper:
        kind, _, span = spec.partition(":")
        start, _, end = span.partition(":")
        if kind not in {*TAMPERS, "freeze"} or not start.isdigit() or not end.isdigit():
            typer.echo(f"error: bad --tamper {spec!r}", err=True)
            raise typer.Exit(2)
        windows.append(TamperWindow(kind, int(start), int(end)))
    settings = load_settings()
    _logging(settings.log_level)
    cam = SimulatedCamera(camera_id, source, fps, tuple(windows))
    client = DeviceClient(settings.mqtt, DeviceKind.CAMERA, camera_id).start()
    try:
        for frame in cam.frames(datetime.now(UTC), count):
            client.publish(MessageKind.FRAME, frame)
            time.sleep(1 / fps)
    except KeyboardInterrupt:
        pass
    finally:
        client.close()


id_app = typer.Typer(no_args_is_help=True, help="Resident identity numbers (GB 11643).")
app.add_typer(id_app, name="id")
plate_app = typer.Typer(no_args_is_help=True, help="Vehicle plates (GA 36).")
app.add_typer(plate_app, name="plate")


@id_app.command("check")
def id_check(number: str) -> None:
    """Validate a resident ID number; print one JSON object."""
    import json

    from processors.rules.idnumber import check_id

    typer.echo(json.dumps(check_id(number).as_json(), ensure_ascii=False))


@plate_app.command("check")
def plate_check(plate: str) -> None:
    """Validate and classify a plate; print one JSON object."""
    import json

    from processors.rules.plates import check_plate

    typer.echo(json.dumps(check_plate(plate).as_json(), ensure_ascii=False))


TOKEN = typer.Option(None, "--token", help="API token (default: SAFECITY_ALERTS__TOKEN)")


watchlist_app = typer.Typer(no_args_is_help=True, help="Watch lists: match, import, delete.")
app.add_typer(watchlist_app, name="watchlist")


def _list_kind(kind: str) -> None:
    from safecity import operator

    if kind not in operator.LIST_TOPICS:
        _fail("--kind must be vehicles or persons")


def _read_list(path: Path, kind: str):
    from processors.rules import watchlist as wl

    try:
        text = path.read_text(encoding="utf-8")
        return text, (wl.parse_vehicles(text) if kind == "vehicles" else wl.parse_persons(text))
    except OSError as exc:
        typer.echo(f"error: cannot read {path}: {exc.strerror}", err=True)
    except UnicodeDecodeError:
        typer.echo(f"error: {path} is not UTF-8 text", err=True)
    except wl.WatchlistError as exc:
        typer.echo(f"error: {path}: {exc}", err=True)
    raise typer.Exit(2)


@watchlist_app.command("match")
def watchlist_match(vehicles: Path | None = typer.Option(None, help="vehicle list CSV"),
                    persons: Path | None = typer.Option(None, help="person list CSV"),
                    plate: str | None = typer.Option(None), id: str | None = typer.Option(None, "--id"),
                    name: str | None = typer.Option(None), birth_date: str | None = typer.Option(None),
                    nationality: str | None = typer.Option(None)) -> None:
    """Match one plate or one person against a list; print a JSON array of matches, best first."""
    import json
    from datetime import date

    from processors.rules import watchlist as wl

    if (vehicles is None) == (persons is None):
        typer.echo("error: give exactly one of --vehicles or --persons", err=True)
        raise typer.Exit(2)
    if vehicles is not None:
        if not plate:
            typer.echo("error: --vehicles needs --plate", err=True)
            raise typer.Exit(2)
        matches = wl.VehicleIndex(_read_list(vehicles, "vehicles")[1]).match(plate)
    else:
        if not (id or name):
            typer.echo("error: --persons needs --id or --name", err=True)
            raise typer.Exit(2)
        try:
            born = date.fromisoformat(birth_date) if birth_date else None
        except ValueError:
            typer.echo("error: --birth-date must be YYYY-MM-DD", err=True)
            raise typer.Exit(2) from None
        matches = wl.PersonIndex(_read_list(persons, "persons")[1]).match(id, name, born, nationality)
    out = [{"entry_id": m.entry_id, "score": m.score, "kind": m.kind, "alert": m.alert,
            "explanation": m.explanation} for m in matches]
    typer.echo(json.dumps(out, ensure_ascii=False))


@watchlist_app.command("import")
def watchlist_import(file: Path, kind: str = typer.Option(..., help="vehicles | persons"),
                     token: str | None = TOKEN) -> None:
    """Import a watch-list CSV through the alert API, as the admin the token names (audited)."""
    import urllib.parse

    _list_kind(kind)
    _read_list(file, kind)  # the same checks the server makes, before a long upload
    summary = _api("POST", f"/api/v1/watchlists/{kind}/import?source={urllib.parse.quote(file.name)}",
                   token=token, upload=file)
    typer.echo(f"published {summary['count']} {kind} entries ({summary['detail']}; sha256 "
               f"{summary['sha256'][:16]}...) as {summary['by']}")


@watchlist_app.command("delete")
def watchlist_delete(entry_id: str, kind: str = typer.Option(..., help="vehicles | persons"),
                     reason: str = typer.Option(..., help="why (audit trail)"), token: str | None = TOKEN) -> None:
    """Delete one entry from a watch list through the alert API, as the admin the token names (audited)."""
    import urllib.parse

    from models.identity import personal_data_in

    _list_kind(kind)
    if found := personal_data_in(reason):
        _fail(f"the reason seems to contain {found}; it is kept in the audit trail for good: refer to the "
              "person by the entry id, never by name or number")
    done = _api("DELETE", f"/api/v1/watchlists/{kind}/entries/{urllib.parse.quote(entry_id, safe='')}",
                {"reason": reason}, token=token)
    typer.echo(f"deleted {done['deleted']} from {kind} as {done['by']}")


@watchlist_app.command("publish", hidden=True)
def watchlist_publish(file: Path, kind: str = typer.Option(...), by: str = typer.Option(...),
                      source: str = typer.Option("upload")) -> None:
    """The server side of an import (the alert API runs it for an authenticated admin): validate the
    file, request its audit record, publish the new and changed entries; one JSON summary on stdout."""
    import json

    from safecity import operator

    text, entries = _read_list(file, kind)
    audit = operator.import_list(load_settings(), kind, text.encode("utf-8"), entries, by, source)
    typer.echo(json.dumps({"count": audit.count, "total": len(entries), "detail": audit.detail,
                           "sha256": audit.sha256, "by": audit.by, "kind": kind}))


@app.command()
def report(start: str = typer.Option(..., "--from", help="first day (YYYY-MM-DD, UTC) or an ISO time"),
           end: str = typer.Option(..., "--to", help="the day after the last (YYYY-MM-DD) or an ISO time"),
           district: str | None = typer.Option(None, help="one district only"),
           out: Path = typer.Option(Path("report.html"), help="the file to write: .html, or .pdf (printed by "
                                                               "headless Chromium)")) -> None:
    """The governance report for a period against the one before it: KPIs, warnings by type and district
    with handling times, late or silent hotels, gas sites with alarms, cameras with the most downtime."""
    from datetime import UTC, datetime

    import subprocess

    from alerting import report as rpt
    from alerting.report_facts import gather
    from alerting.service import store_url
    from alerting.store import AlertStore

    def when(text: str) -> datetime:
        try:
            t = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            _fail(f"{text!r} is not a date or ISO time")
        return t if t.tzinfo else t.replace(tzinfo=UTC)

    t0, t1 = when(start), when(end)
    if t1 <= t0:
        _fail("--to must be after --from")
    if out.suffix.lower() not in (".html", ".pdf"):
        _fail("the report is written as HTML or PDF: --out NAME.html | NAME.pdf")
    settings = load_settings()
    registry = _registry(settings.registry) if settings.registry else None
    store = AlertStore(store_url(settings))
    try:
        p0, p1 = rpt.previous_period(t0, t1)
        current = gather(store, settings.influx, registry, t0, t1, district)
        previous = gather(store, settings.influx, registry, p0, p1, district)
    except OSError as exc:
        _fail(f"InfluxDB at {settings.influx.url} cannot be read ({exc})")
    finally:
        store.close()
    data = rpt.build(current, previous, t0, t1, district, settings.alerts.handled_target_s)
    if out.suffix.lower() == ".pdf":
        from alerting.report_pdf import PdfError, print_pdf

        try:
            print_pdf(rpt.render_html(data), out)
        except (PdfError, OSError, subprocess.TimeoutExpired) as exc:
            _fail(str(exc))
    else:
        out.write_text(rpt.render_html(data), encoding="utf-8")
    k = data["kpis"]
    typer.echo(f"{out}: {k['warnings_issued']} warnings ({k['warnings_handled']} handled), "
               f"{k['registrations']} registrations")


audit_app = typer.Typer(no_args_is_help=True, help="The audit trail: verify its chain, list it.")
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the whole trail's chain (needs the audit key); exit 1 naming the first broken link."""
    import asyncio

    from alerting.audit import read_trail, verify
    from deploy.keys import audit_key

    settings = load_settings()
    trail = asyncio.run(read_trail(settings.kafka))
    n, head, broken = verify(trail, audit_key(settings))
    if broken is not None:
        typer.echo(f"audit trail NOT intact: {broken} ({n} records before it verified)")
        raise typer.Exit(1)
    typer.echo(f"audit trail intact: {n} records; head seq {n - 1}, mac {head} (note it: a chain cannot show "
               "records removed from its end)")


@audit_app.command("show")
def audit_show(since: str | None = typer.Option(None, help="from this time (ISO, with a zone)"),
               action: str | None = typer.Option(None, help="only this action (prefix, e.g. watchlist-)"),
               by: str | None = typer.Option(None, help="only this operator")) -> None:
    """List the trail, oldest first, as JSON lines."""
    import asyncio
    from datetime import datetime

    from alerting.audit import read_trail
    from models import schemas
    from models.schemas import AuditRecord

    try:
        start = datetime.fromisoformat(since.replace("Z", "+00:00")) if since else None
    except ValueError:
        _fail("--since must be an ISO time")
    if start is not None and start.tzinfo is None:
        _fail("--since needs a time zone")
    for offset, value in asyncio.run(read_trail(load_settings().kafka)):
        try:
            r = schemas.decode_as(AuditRecord, value or b"")
        except schemas.SchemaError:
            typer.echo(f'{{"offset": {offset}, "error": "not an audit record"}}')
            continue
        if (start and r.at < start) or (action and not r.action.startswith(action)) or (by and r.by != by):
            continue
        typer.echo(schemas.encode({"offset": offset, **schemas.to_builtins(r)}).decode())


alert_app = typer.Typer(no_args_is_help=True, help="Alerts: list, show, act on them (through the alert API), "
                                                    "test a routing policy.")
app.add_typer(alert_app, name="alert")
user_app = typer.Typer(no_args_is_help=True, help="Operators of the alert API.")
alert_app.add_typer(user_app, name="user")


@app.command()
def alerter() -> None:
    """Run the alert service (store, lifecycle, routing, channels, API) until SIGINT/SIGTERM."""
    from alerting import service

    settings = load_settings()
    _logging(settings.log_level)
    service.run(settings)


@user_app.command("add")
def alert_user_add(name: str, role: str = typer.Option("operator", help="operator | supervisor | admin")) -> None:
    """Create an operator (or give an existing one a new token); prints the API token once."""
    typer.echo(_set_user(load_settings(), name, role, "api-token=new"))


def _set_user(settings, name: str, role: str, what: str, password_hash: str | None = None) -> str:
    """Add or change a user from the command line (audited first, as the API does); the new API token."""
    from datetime import UTC, datetime

    from alerting.service import store_url
    from alerting.store import ROLES, AlertStore
    from models.schemas import AuditRecord
    from safecity import operator

    if role not in ROLES:
        _fail(f"--role must be one of {', '.join(ROLES)}")
    now = datetime.now(UTC)
    operator.request_audit(settings, AuditRecord(action="user-set", by=operator.actor(None), at=now, target=name,
                                                 detail=f"role={role} {what} (command line)"))
    store = AlertStore(store_url(settings))
    try:
        store.migrate()
        return store.add_user(name, role, now, password_hash)
    finally:
        store.close()


def _api(method: str, path: str, body: dict | None = None, token: str | None = None, upload: Path | None = None):
    """Call the alert API (a JSON body, or a file streamed as the body); exit 1 with the API's message
    on a refusal, 2 when it cannot be reached."""
    import json
    import urllib.error
    import urllib.request

    settings = load_settings()
    token = token or (settings.alerts.token.get_secret_value() if settings.alerts.token else None)
    if not token:
        typer.echo("error: no API token: set SAFECITY_ALERTS__TOKEN or pass --token "
                   "(safecity alert user add NAME)", err=True)
        raise typer.Exit(2)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    data = json.dumps(body).encode() if body is not None else None
    if upload is not None:
        headers |= {"Content-Type": "text/csv", "Content-Length": str(upload.stat().st_size)}
        data = open(upload, "rb")  # noqa: SIM115 - streamed by urllib, closed below
    req = urllib.request.Request(settings.alerts.api_url.rstrip("/") + path, method=method, data=data,
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30 if upload is None else 3600) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        try:
            message = json.load(exc).get("error", exc.reason)
        except ValueError:
            message = exc.reason
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(1) from None
    except (urllib.error.URLError, OSError) as exc:
        typer.echo(f"error: the alert API at {settings.alerts.api_url} cannot be reached ({exc})", err=True)
        raise typer.Exit(2) from None
    finally:
        if upload is not None:
            data.close()


def _act(alert_id: str, action: str, reason: str = "", assignee: str = "", token: str | None = None) -> None:
    import urllib.parse

    record = _api("POST", f"/api/v1/alerts/{urllib.parse.quote(alert_id, safe='')}/actions",
                  {"action": action, "reason": reason, "assignee": assignee}, token)
    typer.echo(f"{alert_id}: {record['status']} ({action} by {record['steps'][-1]['by']})")




@alert_app.command("ack")
def alert_ack(alert_id: str, reason: str = typer.Option("", help="comment"), token: str | None = TOKEN) -> None:
    """Acknowledge: someone is on it (stops reminders and escalation; audited)."""
    _act(alert_id, "ack", reason, token=token)


@alert_app.command("assign")
def alert_assign(alert_id: str, to: str = typer.Option(..., "--to", help="person or unit"),
                 reason: str = typer.Option("", help="comment"), token: str | None = TOKEN) -> None:
    """Assign to a person or unit (supervisor)."""
    _act(alert_id, "assign", reason, to, token)


@alert_app.command("subject")
def alert_subject(alert_id: str, reason: str = typer.Option(..., help="why you open it (audit trail)"),
                  token: str | None = TOKEN) -> None:
    """Show a person lead's guest (a supervisor's action, audited with the reason first); JSON."""
    import json
    import urllib.parse

    subject = _api("POST", f"/api/v1/alerts/{urllib.parse.quote(alert_id, safe='')}/subject", {"reason": reason},
                   token=token)
    typer.echo(json.dumps(subject, ensure_ascii=False))


@alert_app.command("comment")
def alert_comment(alert_id: str, text: str = typer.Argument(...), token: str | None = TOKEN) -> None:
    """Add a comment to the alert's timeline."""
    _act(alert_id, "comment", text, token=token)


@alert_app.command("resolve")
def alert_resolve(alert_id: str, reason: str = typer.Option("", help="what was done"),
                  token: str | None = TOKEN) -> None:
    """Close an alert by hand (supervisor)."""
    _act(alert_id, "resolve", reason, token=token)


@alert_app.command("confirm")
def alert_confirm(alert_id: str, reason: str = typer.Option("", help="what was verified"),
                  token: str | None = TOKEN) -> None:
    """A watch-list lead verified by a person (supervisor; closes the lead)."""
    _act(alert_id, "confirm", reason, token=token)


@alert_app.command("reject")
def alert_reject(alert_id: str, reason: str = typer.Option(..., help="why the match was wrong"),
                 token: str | None = TOKEN) -> None:
    """A false match (supervisor): counted per matching rule, so noisy matching shows on the wall."""
    _act(alert_id, "reject", reason, token=token)


@alert_app.command("list")
def alert_list(state: list[str] = typer.Option([], help="firing, acknowledged, cleared, resolved, confirmed, "
                                                        "rejected (repeatable)"),
               type: str | None = typer.Option(None, "--type", help="alert type, * allowed"),
               district: str | None = None, since: str | None = typer.Option(None, help="ISO time with a zone"),
               limit: int = 200, json_out: bool = typer.Option(False, "--json"), token: str | None = TOKEN) -> None:
    """Search the alert history (newest first)."""
    import json
    import urllib.parse

    query = {k: v for k, v in {"status": ",".join(state), "type": type, "district": district, "since": since,
                               "limit": str(limit)}.items() if v}
    records = _api("GET", "/api/v1/alerts?" + urllib.parse.urlencode(query), token=token)
    if json_out:
        typer.echo(json.dumps(records, ensure_ascii=False))
        return
    typer.echo(f"{'first seen':20} {'severity':9} {'status':12} {'n':>4} {'district':10} alert")
    for r in records:
        typer.echo(f"{r['first_seen'][:19]:20} {r['severity']:9} {r['status']:12} {r['count']:>4} "
                   f"{(r.get('place') or {}).get('district', '')[:10]:10} {r['alert_id']}")


@alert_app.command("show")
def alert_show(alert_id: str, json_out: bool = typer.Option(False, "--json"), token: str | None = TOKEN) -> None:
    """One alert: every episode with its evidence and timeline."""
    import json
    import urllib.parse

    episodes = _api("GET", f"/api/v1/alerts/{urllib.parse.quote(alert_id, safe='')}", token=token)
    if json_out:
        typer.echo(json.dumps(episodes, ensure_ascii=False))
        return
    for r in episodes:
        place = r.get("place") or {}
        typer.echo(f"{r['alert_id']}  {r['severity']}  {r['status']}  x{r['count']}")
        typer.echo(f"  {r['summary']}")
        typer.echo(f"  device {r['device_id']}  district {place.get('district', '-')}  site {place.get('site', '-')}"
                   f"  grid {place.get('grid', '-')}")
        typer.echo(f"  first seen {r['first_seen']}  last seen {r['last_seen']}")
        if r.get("details"):
            typer.echo("  evidence: " + ", ".join(f"{k}={v}" for k, v in r["details"].items()))
        for step in r["steps"]:
            extra = f" -> {step['assignee']}" if step.get("assignee") else ""
            note = f": {step['comment']}" if step.get("comment") else ""
            typer.echo(f"  {step['at'][:19]}  {step['change']:12} {step['by']}{extra}{note}")


@alert_app.command("route-test")
def alert_route_test(events: Path = typer.Argument(..., help="JSON lines: alert transitions and operator actions"),
                     policy: Path = typer.Option(..., help="notification policy (YAML)"),
                     registry: Path | None = typer.Option(None, help="device registry (YAML or CSV)"),
                     until: str | None = typer.Option(None, help="run timers up to this ISO time (default: the "
                                                                 "last event's time)")) -> None:
    """Replay a timeline through the lifecycle and the routing policy, with no server: one JSON line per
    notification, in time order."""
    import json
    from datetime import datetime

    from alerting import replay
    from alerting.policy import PolicyError, load_policy

    try:
        pol = load_policy(policy)
        devices = _registry(registry) if registry else {}
        with open(events, encoding="utf-8") as fh:
            items = list(replay.read_timeline(fh))
        end = datetime.fromisoformat(until.replace("Z", "+00:00")) if until else None
    except OSError as exc:
        return _fail(f"cannot read {exc.filename}: {exc.strerror}")
    except UnicodeDecodeError:
        return _fail("a file is not UTF-8 text")
    except PolicyError as exc:
        return _fail(f"{policy}: {exc}")
    except replay.TimelineError as exc:
        return _fail(f"{events}: {exc}")
    except ValueError:
        return _fail("--until must be an ISO 8601 time with a zone")
    if end is not None and end.tzinfo is None:
        return _fail("--until must carry a time zone")
    for out in replay.route_test(items, pol, devices, end):
        if isinstance(out, tuple):
            typer.echo(f"{events}: line {out[0]}: refused: {out[1]}", err=True)
        else:
            typer.echo(json.dumps(out.as_line()))


console_app = typer.Typer(help="The operator console in the browser: serve it, add its users, take a screenshot.",
                          invoke_without_command=True)
app.add_typer(console_app, name="console")


@console_app.callback()
def console_serve(ctx: typer.Context) -> None:
    """Serve the console (SAFECITY_CONSOLE__HOST/PORT) until SIGINT/SIGTERM; it talks to the alert
    API (SAFECITY_ALERTS__API_URL), MQTT, Kafka (evidence pictures) and InfluxDB (devices)."""
    if ctx.invoked_subcommand is not None:
        return
    from console import app as console

    settings = load_settings()
    _logging(settings.log_level)
    console.run(settings)


def _new_password(name: str, password_stdin: bool) -> str:
    from console.auth import password_problem

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    problem = password_problem(name, password)
    if problem:
        _fail(problem)
    return password


@console_app.command("user")
def console_user(name: str = typer.Argument(..., help="sign-in name (not a person's ID number)"),
                 role: str = typer.Option("operator", help="operator | supervisor | admin"),
                 password_stdin: bool = typer.Option(False, "--password-stdin",
                                                     help="read the password from stdin (else: asked twice)")) -> None:
    """Add a console user (the first admin, say) or give one a new role and password; audited. Run
    where the alert store is reachable; later users are added by an admin in the console."""
    from alerting.store import ROLES
    from console.auth import hash_password

    if role not in ROLES:
        _fail(f"--role must be one of {', '.join(ROLES)}")
    settings = load_settings()
    _set_user(settings, name, role, "password=new", hash_password(_new_password(name, password_stdin)))
    typer.echo(f"{name} ({role}) may sign in at http://{settings.console.host}:{settings.console.port}/")


@console_app.command("screenshot")
def console_screenshot(out: Path = typer.Option(Path("console-board.png"), help="PNG file to write"),
                       name: str = typer.Option(..., "--user", help="console user to sign in as"),
                       password_file: Path = typer.Option(..., help="file holding that user's password"),
                       page: str = typer.Option("board", help="board | map | devices | alert:<ALERT_ID>"),
                       url: str | None = typer.Option(None, help="console address (default: from the settings)"),
                       chromium: str = typer.Option("/usr/bin/chromium", help="Chromium executable")) -> None:
    """Sign in with headless Chromium (Debian's, never a downloaded one) and save a page as PNG."""
    from console.screenshot import ScreenshotError, screenshot

    settings = load_settings()
    base = url or f"http://{settings.console.host}:{settings.console.port}"
    try:
        screenshot(base, name, password_file.read_text(encoding="utf-8").strip(), page, out, chromium)
    except (OSError, ScreenshotError) as exc:
        _fail(str(exc))
    typer.echo(f"wrote {out}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
