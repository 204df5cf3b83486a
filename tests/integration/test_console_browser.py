"""The console in a real browser: Debian's headless Chromium driven by Playwright (no browser is
downloaded), against the session's real pipeline. What an operator does during a shift: sign in, see a
gas alarm published on MQTT appear on the board without reloading, acknowledge it with a comment (and
see it on MQTT and in the store), find that resolving is a supervisor's step, and look at a plate
lead's snapshot and explanation, and the map."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
import urllib.parse
import uuid
from datetime import UTC, datetime

import cv2
import pytest

from devices.client import DeviceClient
from models import topics
from models.schemas import PlateColour, PlateRead
from models.topics import DeviceKind, MessageKind
from tests.integration.harness import poll, retained
from tests.integration.test_alerting import QUIET, leak
from tests.integration.test_console import signed_in
from tests.integration.test_watchlist import cli

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is not installed: scripts/setup.sh installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def sign_in(browser, console, role: str):
    """Through the sign-in page, as `safecity console screenshot` does; then until the feed is live."""
    from console.screenshot import sign_in as through_the_page

    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    through_the_page(page, console.url, *console.users[role])
    page.wait_for_selector("#live:not(.off)")
    return page


def row(alert_id: str) -> str:
    return f'#board-rows tr[data-alert="{alert_id}"]'


def test_a_shift_on_the_console(browser, console, settings, registry):
    sensor = registry.add("gas", lat=31.215, lon=121.51, district="east", site="bldg-77", **QUIET)
    alert_id = f"gas-level-1:{sensor}"
    op = sign_in(browser, console, "operator")
    op_name, sup_name = console.users["operator"][0], console.users["supervisor"][0]
    op.evaluate("window.__notReloaded = true")
    start = time.monotonic()
    client = leak(settings, sensor)
    try:
        op.wait_for_selector(row(alert_id), timeout=60_000)
        appeared = time.monotonic() - start
        assert op.evaluate("window.__notReloaded") is True  # it came live, not by a reload
        assert op.inner_text(row(alert_id) + " td:nth-child(2)") == "firing"
        print(f"gas alarm: publish -> board row {appeared:.2f} s (ingest, worker, alert service, MQTT, console)")

        op.click(row(alert_id))
        op.wait_for_selector("#alert-timeline")
        assert op.inner_text("#evidence-reading") == "reading 31 %LEL · alarm level 25 %LEL"
        assert op.is_disabled("#action-resolve") and op.is_disabled("#action-confirm")  # not an operator's steps
        op.fill("#action-reason", "on my way, ventilating")
        op.click("#action-ack")
        op.wait_for_selector("#alert-timeline li:has-text('acknowledged')")
        assert f"acknowledged by {op_name}" in op.inner_text("#alert-timeline")
        assert "on my way, ventilating" in op.inner_text("#alert-timeline")
        state = poll(lambda: next((v for v in retained(settings, f"{topics.PREFIX}/alerts/#").values()
                                   if v["alert_id"] == alert_id and v["status"] == "acknowledged"), None),
                     30, "the acknowledgement on MQTT")
        assert state["acknowledged_by"] == op_name
        status, stored = signed_in(console, "supervisor").call("GET", f"/console/api/alerts/{alert_id}")
        assert stored["episodes"][-1]["acknowledged_by"] == op_name  # in the store

        # a disabled button is a courtesy: the step itself is refused by the API
        refused = op.evaluate("""async (id) => {
            const me = await (await fetch('/console/api/me')).json();
            const r = await fetch(`/console/api/alerts/${encodeURIComponent(id)}/actions`, {method: 'POST',
              headers: {'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf},
              body: JSON.stringify({action: 'resolve', reason: 'done'})});
            return [r.status, (await r.json()).error];
        }""", alert_id)
        assert refused == [403, "an operator may not resolve"]

        sup = sign_in(browser, console, "supervisor")
        sup.goto(console.url + f"/#/alert/{urllib.parse.quote(alert_id, safe='')}")
        sup.wait_for_selector("#alert-timeline")
        sup.fill("#action-reason", "valve closed")
        sup.click("#action-resolve")
        sup.wait_for_selector("#alert-head .st-resolved")
        op.wait_for_selector("#alert-head .st-resolved", timeout=10_000)  # the operator's page follows live
        assert f"resolved by {sup_name}" in op.inner_text("#alert-timeline")
        poll(lambda: all(v["alert_id"] != alert_id for v in retained(settings, f"{topics.PREFIX}/alerts/#").values()),
             30, "the closed alert's retained state emptied")
    finally:
        client.close()


def test_a_plate_lead_shows_its_snapshot_and_explanation(browser, console, settings, registry, admin_env, tmp_path):
    from skimage import data

    checkpoint = registry.add("camera", lat=31.23, lon=121.53, district="east", **QUIET)
    plate, entry = "沪B" + uuid.uuid4().hex[:5].upper().replace("I", "1").replace("O", "0"), f"v-{uuid.uuid4().hex[:6]}"
    lists = tmp_path / "vehicles.csv"
    lists.write_text(f"entry_id,plate,category,priority,valid_from,valid_until\n{entry},{plate},stolen-vehicle,2,,\n")
    cli(admin_env, "watchlist", "import", str(lists), "--kind", "vehicles")
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    snapshot = jpeg.tobytes()
    sup = sign_in(browser, console, "supervisor")
    cam = DeviceClient(settings.mqtt, DeviceKind.CAMERA, checkpoint).start()
    try:
        cam.publish(MessageKind.PLATE_READ, PlateRead(
            read_id=uuid.uuid4().hex, checkpoint_id=checkpoint, camera_id=f"{checkpoint}-L1", lane=1, plate=plate,
            plate_colour=PlateColour.BLUE, confidence=0.93, captured_at=datetime.now(UTC),
            snapshot_jpeg=snapshot)).wait_for_publish(10)
        lead = f'#board-rows tr[data-alert^="watch:{entry}:{checkpoint}:"]'
        sup.wait_for_selector(lead, timeout=60_000)
        sup.click(lead)
        sup.wait_for_selector("#evidence-lead")
        facts = sup.inner_text("#evidence-lead")
        assert "exact plate match" in facts and plate in facts and entry in facts and "stolen-vehicle" in facts
        poll(lambda: sup.evaluate("() => { const i = document.querySelector('#evidence-image'); "
                                  "return i && i.complete && i.naturalWidth > 0; }"), 30, "the snapshot shown")
        assert sup.evaluate("document.querySelector('#evidence-image').naturalWidth") == 512  # the astronaut
        alert_id = sup.evaluate("decodeURIComponent(location.hash.split('/').slice(2).join('/'))")
        status, body = signed_in(console, "operator").call(
            "GET", f"/console/api/alerts/{urllib.parse.quote(alert_id, safe='')}/image", raw=True)
        assert (status, body) == (200, snapshot)  # the very bytes the camera sent, read back from Kafka
    finally:
        cam.close()


def test_the_map_shows_the_devices(browser, console, registry):
    registry.add("gas", lat=31.205, lon=121.505, district="east", **QUIET)
    sup = sign_in(browser, console, "supervisor")
    sup.click("nav a[data-page=map]")
    sup.wait_for_selector("#map-ready", state="attached")
    placed = [d for d in registry.devices if d.get("lat") is not None]
    assert sup.locator("#map-svg circle.device").count() == len(placed)
    assert sup.locator("#map-svg polygon.district").count() == 1  # the outline from the GeoJSON setting
    states = set(sup.eval_on_selector_all("#map-svg circle.device", "els => els.map(e => e.dataset.state)"))
    assert states <= {"alarm", "offline", "faulty", "low-battery", "online", "unknown"} and states
    sup.click("nav a[data-page=devices]")
    sup.wait_for_selector("#devices-ready", state="attached")
    assert sup.locator("#device-rows tr").count() == len(registry.devices)


def test_a_person_lead_shows_no_name_until_a_supervisor_opens_it_audited(browser, console, settings, registry,
                                                                          admin_env, tmp_path):
    from models import schemas
    from models.schemas import HotelRegistration, IdType
    from tests.integration.harness import kafka_records

    from processors.rules.idnumber import id_check_character

    hotel, entry = registry.add("hotel", lat=31.22, lon=121.52, district="east", **QUIET), f"p-{uuid.uuid4().hex[:6]}"
    base = f"31010419850612{int(uuid.uuid4().hex[:4], 16) % 1000:03d}"  # this test's own subject: no other list matches
    number = base + id_check_character(base)
    lists = tmp_path / "persons.csv"
    lists.write_text("entry_id,name,id_number,birth_date_from,birth_date_to,category,priority,valid_from,valid_until\n"
                     f"{entry},,{number},,,wanted-person,1,,\n")
    cli(admin_env, "watchlist", "import", str(lists), "--kind", "persons")
    op, sup = sign_in(browser, console, "operator"), sign_in(browser, console, "supervisor")
    desk = DeviceClient(settings.mqtt, DeviceKind.HOTEL, hotel).start()
    try:
        desk.publish(MessageKind.REGISTRATION, HotelRegistration(
            registration_id=uuid.uuid4().hex, hotel_id=hotel, guest_name="王芳", id_type=IdType.RESIDENT_ID,
            id_number=number, nationality="CHN", birth_date=datetime(1985, 6, 12).date(),
            room="1203", checkin_at=datetime.now(UTC))).wait_for_publish(10)
        lead = f'#board-rows tr[data-alert^="watch:{entry}:{hotel}:"]'
        op.wait_for_selector(lead, timeout=60_000)
        assert op.is_visible("#cue") and "NEW CRITICAL: watchlist-person" in op.inner_text("#cue")  # the cue
        op.click(lead)
        op.wait_for_selector("#evidence-lead")
        assert op.is_disabled("#open-subject")  # an operator never opens a guest's record
        for page in (op,):
            text = page.content()
            assert "王芳" not in text and number[:-1] not in text and "1985-06-12" not in text

        sup.wait_for_selector(lead)
        sup.click(lead)
        sup.wait_for_selector("#open-subject")
        assert "王芳" not in sup.content()
        alert_id = sup.evaluate("decodeURIComponent(location.hash.split('/').slice(2).join('/'))")
        assert number[:-1] not in alert_id and "王芳" not in alert_id  # nor in the page's address
        sup.click("#open-subject")
        sup.fill("#subject-reason", "verifying the lead with the front desk")
        sup.click("#subject-go")
        sup.wait_for_selector("#subject-out dl")
        assert "王芳" in sup.inner_text("#subject-out") and number in sup.inner_text("#subject-out")
        sup.click("#modal button.link")  # closing the dialog takes the record off the page
        assert "王芳" not in sup.content()
        supervisor = console.users["supervisor"][0]

        def audited():  # read off Playwright's event loop (kafka_records runs its own)
            with ThreadPoolExecutor(1) as pool:
                found = pool.submit(kafka_records, settings, topics.KAFKA_AUDIT,
                                    lambda k, v: alert_id.encode() in v, 5).result()
            got = [schemas.decode_as(schemas.AuditRecord, r.value) for r in found]
            return [a for a in got if (a.action, a.by) == ("alert-open-subject", supervisor)] or None

        record = poll(audited, 60, "the opening in the audit trail")[0]
        assert record.detail == "verifying the lead with the front desk"
    finally:
        desk.close()
