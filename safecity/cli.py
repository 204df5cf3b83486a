"""`safecity`: run the stages, the local services, the simulators and the demo."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

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


def _logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


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
         duration: float | None = typer.Option(None, help="stop after this many seconds")) -> None:
    """The whole pipeline on one machine: services, ingest, a worker, simulators, live view."""
    from safecity.demo import run_demo

    raise typer.Exit(run_demo(load_settings(), rate=rate, duration=duration))


@gas_app.command("replay")
def gas_replay(file: Path = typer.Argument(..., help="CSV: time,sensor_id,gas,value,unit[,battery]"),
               interval: float = typer.Option(60.0, min=0.001, help="expected reporting interval, seconds")) -> None:
    """Run the gas rules (default settings) over a recorded series; one JSON line per alert transition."""
    import json

    from processors import gas_replay
    from processors.rules.gas import GasConfig

    try:
        with open(file, newline="", encoding="utf-8") as fh:
            rows = gas_replay.read_rows(fh)
    except OSError as exc:
        typer.echo(f"error: cannot read {file}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    except gas_replay.ReplayError as exc:
        typer.echo(f"error: {file}: {exc}", err=True)
        raise typer.Exit(2) from None
    for alert in gas_replay.replay(rows, GasConfig(interval_s=interval)):
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


watchlist_app = typer.Typer(no_args_is_help=True, help="Watch lists: match, import, delete.")
app.add_typer(watchlist_app, name="watchlist")


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
                     by: str | None = typer.Option(None, help="who imports (audit trail); default: the login name")) -> None:
    """Validate a watch-list CSV and publish it to the running system (audited)."""
    from safecity import operator

    if kind not in operator.LIST_TOPICS:
        typer.echo("error: --kind must be vehicles or persons", err=True)
        raise typer.Exit(2)
    text, entries = _read_list(file, kind)
    audit = operator.import_list(load_settings(), kind, text.encode("utf-8"), entries, by, str(file))
    typer.echo(f"published {audit.count} {kind} entries (sha256 {audit.sha256[:16]}...) as {audit.by}")


@watchlist_app.command("delete")
def watchlist_delete(entry_id: str, kind: str = typer.Option(..., help="vehicles | persons"),
                     reason: str = typer.Option(..., help="why (audit trail)"), by: str | None = None) -> None:
    """Delete one entry from a watch list (a tombstone on its compacted topic; audited)."""
    from safecity import operator

    if kind not in operator.LIST_TOPICS:
        typer.echo("error: --kind must be vehicles or persons", err=True)
        raise typer.Exit(2)
    audit = operator.delete_entry(load_settings(), kind, entry_id, by, reason)
    typer.echo(f"deleted {entry_id} from {kind} as {audit.by}")


alert_app = typer.Typer(no_args_is_help=True, help="Operator decisions on alerts (audited).")
app.add_typer(alert_app, name="alert")


def _decide(alert_id: str, decision: str, reason: str, by: str | None) -> None:
    from models.schemas import Decision
    from safecity import operator

    audit = operator.decide(load_settings(), alert_id, Decision(decision), reason, by)
    typer.echo(f"{decision} {alert_id} as {audit.by}")


@alert_app.command("ack")
def alert_ack(alert_id: str, reason: str = typer.Option("", help="note"), by: str | None = None) -> None:
    """Acknowledge an alert: someone is on it (audited; it clears when its cause does)."""
    _decide(alert_id, "acknowledged", reason, by)


@alert_app.command("confirm")
def alert_confirm(alert_id: str, reason: str = typer.Option("", help="what was verified"),
                  by: str | None = None) -> None:
    """The lead was verified by a person."""
    _decide(alert_id, "confirmed", reason, by)


@alert_app.command("reject")
def alert_reject(alert_id: str, reason: str = typer.Option(..., help="why the match was wrong"),
                 by: str | None = None) -> None:
    """A false match: counted per rule, so noisy matching shows on the dashboard."""
    _decide(alert_id, "rejected", reason, by)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
