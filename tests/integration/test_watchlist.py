"""Watch lists on the real pipeline: import, live hits, a suppressed duplicate, a retro-hunt hit,
an operator's rejection, and the audit trail."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from devices.client import DeviceClient
from models import schemas, topics
from models.schemas import HotelRegistration, IdType, PlateColour, PlateRead
from models.topics import DeviceKind, MessageKind
from tests.integration.harness import ROOT, MqttProbe, influx_query, kafka_records, poll

pytestmark = pytest.mark.integration


def read(cp: str, plate: str, at: datetime) -> PlateRead:
    return PlateRead(read_id=uuid.uuid4().hex, checkpoint_id=cp, camera_id=f"{cp}-L1", lane=1, plate=plate,
                     plate_colour=PlateColour.BLUE, confidence=0.9, captured_at=at)


def cli(env: dict, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "safecity.cli", *args], capture_output=True, text=True, cwd=ROOT,
                         env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_watchlist_end_to_end(pipeline, settings, registry, stack_env, tmp_path, api_token, admin_env):
    cp1, cp2, hotel = registry.add("camera"), registry.add("camera"), registry.add("hotel")
    tag = uuid.uuid4().hex[:6]
    probe = MqttProbe(settings, f"{topics.PREFIX}/alerts/#")
    cam1 = DeviceClient(settings.mqtt, DeviceKind.CAMERA, cp1).start()
    cam2 = DeviceClient(settings.mqtt, DeviceKind.CAMERA, cp2).start()
    desk = DeviceClient(settings.mqtt, DeviceKind.HOTEL, hotel).start()
    now = datetime.now(UTC)
    try:
        # seen an hour ago, before anyone listed it: only a retro-hunt can find it
        cam1.publish(MessageKind.PLATE_READ, read(cp1, "苏E77777", now - timedelta(hours=1))).wait_for_publish(10)
        poll(lambda: influx_query(settings, f"SELECT count(*) FROM plate_reads WHERE checkpoint_id = '{cp1}'"), 60,
             "the early read")

        vehicles, persons = tmp_path / "vehicles.csv", tmp_path / "persons.csv"
        vehicles.write_text("entry_id,plate,category,priority,valid_from,valid_until\n"
                            f"v-{tag}-a,京A8B123,stolen-vehicle,2,,\nv-{tag}-x,苏E77777,wanted-vehicle,1,,\n")
        persons.write_text("entry_id,name,id_number,birth_date_from,birth_date_to,category,priority,valid_from,"
                           f"valid_until\np-{tag},,11010519491231002X,,,wanted-person,1,,\n")
        assert "published 2 vehicles" in cli(admin_env, "watchlist", "import", str(vehicles), "--kind", "vehicles")
        cli(admin_env, "watchlist", "import", str(persons), "--kind", "persons")

        retro = probe.next_json(90, lambda a: a["type"] == "watchlist-retro-hit")
        assert (retro["details"]["entry_id"], retro["device_id"], retro["severity"]) == (f"v-{tag}-x", cp1, "critical")
        assert retro["details"]["seen_at"].startswith((now - timedelta(hours=1)).isoformat()[:16])

        cam1.publish(MessageKind.PLATE_READ, read(cp1, "京A8B123", now))
        cam1.publish(MessageKind.PLATE_READ, read(cp1, "京A8B123", now + timedelta(minutes=2)))  # duplicate
        cam2.publish(MessageKind.PLATE_READ, read(cp2, "京A88123", now + timedelta(minutes=3)))  # OCR look-alike
        cam2.publish(MessageKind.PLATE_READ, read(cp2, "鲁C12345", now + timedelta(minutes=4)))  # not listed
        desk.publish(MessageKind.REGISTRATION, HotelRegistration(
            registration_id=uuid.uuid4().hex, hotel_id=hotel, guest_name="王芳", id_type=IdType.RESIDENT_ID,
            id_number="11010519491231002x", nationality="CHN", birth_date=datetime(1949, 12, 31).date(),
            room="1203", checkin_at=now - timedelta(minutes=1)))
        # sentinels: a listed plate seen after the duplicate at cp1 and after the unlisted plate at cp2;
        # a hit for the duplicate or the unlisted plate would arrive before them
        cam1.publish(MessageKind.PLATE_READ, read(cp1, "苏E77777", now + timedelta(minutes=5)))
        cam2.publish(MessageKind.PLATE_READ, read(cp2, "苏E77777", now + timedelta(minutes=5)))
        is_live_hit = lambda a: a["type"] in ("watchlist-vehicle", "watchlist-person")  # noqa: E731
        is_sentinel = lambda a: is_live_hit(a) and a["details"]["entry_id"] == f"v-{tag}-x"  # noqa: E731
        # Alerts are keyed by alert id, so the service may take different alerts in any order: read
        # until both sentinels and three other hits have come; a repeated or unlisted hit among them
        # makes the list below differ from the expected one.
        hits, sentinels = [], set()
        while len(sentinels) < 2 or len(hits) < 3:
            hit = probe.next_json(60, is_live_hit)
            if is_sentinel(hit):
                sentinels.add(hit["device_id"])
            else:
                hits.append(hit)
        assert sentinels == {cp1, cp2}
        got = sorted((h["type"], h["device_id"], h["details"]["match"]) for h in hits)
        assert got == sorted([("watchlist-vehicle", cp1, "exact"), ("watchlist-vehicle", cp2, "ocr-equivalent"),
                              ("watchlist-person", hotel, "exact")])
        person = next(h for h in hits if h["type"] == "watchlist-person")
        assert "王芳" not in json.dumps(person, ensure_ascii=False) and "11010519491231002" not in json.dumps(person)
        ocr = next(h for h in hits if h["details"]["match"] == "ocr-equivalent")
        assert ocr["details"]["explanation"] == "8→B at position 4"

        cli(stack_env | {"SAFECITY_ALERTS__TOKEN": api_token}, "alert", "reject", ocr["alert_id"], "--reason",
            "different vehicle on the snapshot")
        closed = probe.next_json(60, lambda a: a["alert_id"] == ocr["alert_id"] and a["status"] != "firing")
        assert (closed["state"], closed["status"], closed["closed_by"]) == ("cleared", "rejected", "duty-officer")
        poll(lambda: influx_query(settings, "SELECT sum(count) FROM alert_feedback WHERE decision = 'rejected' "
                                            "AND rule = 'ocr-equivalent'"), 30, "rejections counted per rule")
        poll(lambda: influx_query(settings, f"SELECT sum(suppressed) FROM watchlist_hits WHERE place = '{cp1}'"),
             30, "the suppressed duplicate counted")

        # an unchanged re-import publishes nothing, so nothing is hunted for again
        again = cli(admin_env, "watchlist", "import", str(vehicles), "--kind", "vehicles")
        assert "published 0 vehicles entries (2 of 2 entries unchanged" in again
        # sentinel: a new entry seen an hour ago, imported after the re-import; its retro-hit comes
        # through the same path after any repeated hunt of the first entries would have
        cam1.publish(MessageKind.PLATE_READ, read(cp1, "苏E66666", now - timedelta(hours=1))).wait_for_publish(10)
        assert kafka_records(settings, topics.KAFKA_TOPICS[MessageKind.PLATE_READ],
                      lambda k, v: "苏E66666".encode() in v and cp1.encode() in v, timeout=60)  # what a hunt reads
        sentinel = tmp_path / "sentinel.csv"
        sentinel.write_text(f"entry_id,plate,category,priority,valid_from,valid_until\nv-{tag}-s,苏E66666,wanted-vehicle,1,,\n")
        cli(admin_env, "watchlist", "import", str(sentinel), "--kind", "vehicles")
        before = []
        while True:
            msg = probe.next_json(90)
            if msg.get("details", {}).get("entry_id") == f"v-{tag}-s":
                break
            before.append(msg)
        assert [m["alert_id"] for m in before if m["type"] == "watchlist-retro-hit"] == []
    finally:
        for client in (cam1, cam2, desk):
            client.close()
        probe.close()
    wanted = {("watchlist-import-vehicles", "officer-7"), ("watchlist-import-persons", "officer-7"),
              ("alert-reject", "duty-officer")}

    def chained() -> list:  # the imports' records are chained by the alert service from their requests
        got = [schemas.decode_as(schemas.AuditRecord, r.value)
               for r in kafka_records(settings, topics.KAFKA_AUDIT, lambda k, v: b"officer" in k, timeout=5)]
        return got if wanted <= {(a.action, a.by) for a in got} else None

    audit = poll(chained, 60, "the imports and the decision in the audit trail")
    assert all(len(a.sha256) == 64 for a in audit if a.action.startswith("watchlist-import"))
    assert not any("11010519491231002X" in schemas.encode(a).decode() for a in audit)


def test_expired_cooldown_entries_are_dropped(pipeline, settings, registry):
    """The cooldown table shrinks: an entry whose cooldown ended long ago is deleted (a tombstone on
    its changelog), so a later hit of the same subject at that place is no longer suppressed."""
    from models.watchlist import Category, VehicleEntry
    from deploy.keys import pseudonyms
    from processors.rules import watch_alerts
    from safecity import operator

    cp = registry.add("camera")
    plate = f"浙B{uuid.uuid4().int % 90000 + 10000}"
    entry = VehicleEntry(entry_id=f"cool-{cp}", plate=plate, category=Category.WANTED_VEHICLE)
    operator.import_list(settings, "vehicles", b"cooldown test", [entry], "tester", "-")
    cam = DeviceClient(settings.mqtt, DeviceKind.CAMERA, cp).start()
    start = datetime.now(UTC) - timedelta(hours=6)

    def rows_at(measurement: str, at: datetime) -> list[dict]:
        return influx_query(settings, f"SELECT * FROM {measurement} WHERE checkpoint_id = '{cp}' AND "
                                      f"time = '{at.isoformat().replace('+00:00', 'Z')}'"
                            if measurement == "plate_reads" else
                            f"SELECT * FROM {measurement} WHERE place = '{cp}' AND "
                            f"time = '{at.isoformat().replace('+00:00', 'Z')}'")

    def one_read(at: datetime) -> list[dict]:
        """Publish one read and wait until the worker has processed it; its hit row, if it matched."""
        cam.publish(MessageKind.PLATE_READ, read(cp, plate, at)).wait_for_publish(10)
        poll(lambda: rows_at("plate_reads", at), 30, "the read processed")
        try:  # its hit, if any, is written with it (separate points: allow a moment)
            return poll(lambda: rows_at("watchlist_hits", at), 3, "a hit")
        except AssertionError:
            return []

    try:
        at, hit = start, []
        deadline = datetime.now(UTC) + timedelta(seconds=90)
        while not hit:  # one read at a time, 15 min apart, until the list has reached the worker
            assert datetime.now(UTC) < deadline, "the watch list never reached the worker"
            at += timedelta(minutes=15)
            hit = one_read(at)
        sid = pseudonyms(settings).of(plate)  # the worker's key: it shares the run directory
        key = watch_alerts.cooldown_key(entry.entry_id, sid, cp).encode()
        changelog = f"{settings.worker.app_id}-watch-cooldown-changelog"
        poll(lambda: kafka_records(settings, changelog, lambda k, v: k == key and v == b"", timeout=2), 60,
             "the expired cooldown entry dropped (a tombstone)")
        again = at + timedelta(minutes=1)  # within the cooldown of the hit, by event time
        one_read(again)
        second = poll(lambda: rows_at("watchlist_hits", again), 30, "the second hit, counted")
    finally:
        cam.close()
    assert hit[0]["suppressed"] == 0 and second[0]["suppressed"] == 0  # without the sweep: suppressed


def test_only_an_authenticated_admin_changes_the_lists(pipeline, stack_env, admin_env, api_token, tmp_path):
    """Imports and deletions go through the alert API as the user the token names: a supervisor is
    refused, a missing or wrong token too, and a malformed file is refused naming the line."""
    listing = tmp_path / "v.csv"
    listing.write_text("entry_id,plate,category,priority,valid_from,valid_until\nauth-1,京A12121,stolen-vehicle,2,,\n",
                       encoding="utf-8")

    def run(env, *args):
        return subprocess.run([sys.executable, "-m", "safecity.cli", *args], capture_output=True, text=True, cwd=ROOT,
                              env=env)

    supervisor = stack_env | {"SAFECITY_ALERTS__TOKEN": api_token}
    refused = run(supervisor, "watchlist", "import", str(listing), "--kind", "vehicles")
    assert refused.returncode == 1 and "only an admin" in refused.stderr
    assert run(stack_env | {"SAFECITY_ALERTS__TOKEN": "not-a-token"}, "watchlist", "import", str(listing), "--kind",
               "vehicles").returncode == 1
    no_token = run({k: v for k, v in stack_env.items() if k != "SAFECITY_ALERTS__TOKEN"}, "watchlist", "delete",
                   "auth-1", "--kind", "vehicles", "--reason", "x")
    assert no_token.returncode == 2 and "no API token" in no_token.stderr
    assert "as officer-7" in run(admin_env, "watchlist", "import", str(listing), "--kind", "vehicles").stdout
    assert "deleted auth-1 from vehicles as officer-7" in run(admin_env, "watchlist", "delete", "auth-1", "--kind",
                                                               "vehicles", "--reason", "withdrawn").stdout
    # the server checks the file too (a client that skips the CLI's own check)
    import urllib.error
    import urllib.request

    bad = b"entry_id,plate,category,priority,valid_from,valid_until\nauth-2,NOT A PLATE,stolen-vehicle,2,,\n"
    req = urllib.request.Request(f"{admin_env['SAFECITY_ALERTS__API_URL']}/api/v1/watchlists/vehicles/import",
                                 data=bad, method="POST",
                                 headers={"Authorization": f"Bearer {admin_env['SAFECITY_ALERTS__TOKEN']}"})
    try:
        urllib.request.urlopen(req, timeout=60)
        raise AssertionError("a malformed list was accepted")
    except urllib.error.HTTPError as exc:
        assert exc.code == 400 and json.load(exc)["error"].startswith("line 2: plate")
