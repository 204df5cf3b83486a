"""Cooldown, retro-hunt and hotel compliance rules (pure, injected times)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from models import schemas
from models.schemas import HotelRegistration, IdType, PlateColour, PlateRead
from models.topics import MessageKind
from models.watchlist import Category, PersonEntry, VehicleEntry
from processors.rules import compliance, retro, watch_alerts
from models.privacy import Pseudonyms
from processors.rules.watchlist import VehicleIndex

KEYS = Pseudonyms(b"unit-test-key-0123456789abcdef", "t1")

T0 = datetime(2026, 11, 29, 8, tzinfo=UTC)
CN = timezone(timedelta(hours=8))


def read(plate: str, cp: str, minutes: float, ingested: float | None = None) -> PlateRead:
    at = T0 + timedelta(minutes=minutes)
    return PlateRead(read_id=f"r{minutes}", checkpoint_id=cp, camera_id=f"{cp}-L1", lane=1, plate=plate,
                     plate_colour=PlateColour.BLUE, confidence=0.9, captured_at=at,
                     ingested_at=at + timedelta(seconds=1 if ingested is None else ingested))


def test_cooldown_window_and_keys():
    assert not watch_alerts.in_cooldown(None, T0)
    assert watch_alerts.in_cooldown(T0, T0 + timedelta(minutes=9, seconds=59))
    assert not watch_alerts.in_cooldown(T0, T0 + timedelta(minutes=10))
    # the read that started the cooldown, replayed after a failover, is sent again (recognised as a
    # repeat by the alert service, so it reaches people once even if its first send was lost)
    assert not watch_alerts.in_cooldown(T0, T0)
    assert watch_alerts.in_cooldown(T0, T0 - timedelta(seconds=1))  # an older read arriving late
    sid = KEYS.of("京A12345")
    a = watch_alerts.cooldown_key("v-1", sid, "cp-1")
    assert a != watch_alerts.cooldown_key("v-2", sid, "cp-1")  # another entry is not suppressed
    assert a != watch_alerts.cooldown_key("v-1", sid, "cp-2")  # nor another place
    assert a != watch_alerts.cooldown_key("v-1", KEYS.of("京A12346"), "cp-1")  # nor another subject
    assert "京A12345" not in a


def test_person_alert_names_no_person():
    reg = HotelRegistration(registration_id="g-1", hotel_id="h-1", guest_name="王芳", id_type=IdType.RESIDENT_ID,
                            id_number="11010519491231002X", nationality="CHN", birth_date=T0.date(), room="1",
                            checkin_at=T0)
    idx_entry = PersonEntry(entry_id="p-1", id_number="11010519491231002X", category=Category.WANTED_PERSON,
                            priority=1)
    from processors.rules.watchlist import PersonIndex

    (m,) = PersonIndex([idx_entry]).match(reg.id_number, at=T0)
    alert = watch_alerts.person_alert(reg, m, KEYS.of(watch_alerts.person_subject(reg)))
    text = schemas.encode(alert).decode()
    assert "王芳" not in text and "11010519491231002X" not in text and alert.severity.value == "critical"
    assert alert.details["subject"] == KEYS.of("resident-id:11010519491231002X") and alert.alert_id.endswith(
        alert.details["subject"])


def test_retro_hunt_reports_each_place_once_with_first_and_last_sighting():
    entry = VehicleEntry(entry_id="v-9", plate="苏E77772", category=Category.WANTED_VEHICLE,
                         listed_at=T0 + timedelta(hours=2))
    events = [schemas.encode(r) for r in (read("苏E77772", "cp-1", 10), read("苏E77772", "cp-1", 50),
                                          read("苏E7777Z", "cp-2", 70), read("鲁C12345", "cp-1", 80),
                                          read("苏E77772", "cp-3", 130))]  # cp-3 came after it was listed
    alerts = {a.device_id: a for a in retro.hunt([entry], events, MessageKind.PLATE_READ, KEYS)}
    assert set(alerts) == {"cp-1", "cp-2"}
    assert alerts["cp-1"].since == T0 + timedelta(minutes=10) and alerts["cp-1"].at == T0 + timedelta(minutes=50)
    assert alerts["cp-1"].details["sightings"] == 2 and alerts["cp-2"].details["match"] == "ocr-equivalent"
    assert all(a.type == "watchlist-retro-hit" for a in alerts.values())


def test_retro_hunt_fed_in_chunks_equals_one_pass_and_skips_snapshots():
    import msgspec

    entry = VehicleEntry(entry_id="v-9", plate="苏E77772", category=Category.WANTED_VEHICLE,
                         listed_at=T0 + timedelta(hours=2))
    reads = [msgspec.structs.replace(read("苏E77772", f"cp-{i % 3}", i), snapshot_jpeg=b"\xff\xd8" * 50_000)
             for i in range(0, 100, 7)]
    events = [schemas.encode(r) for r in reads]
    whole = retro.hunt([entry], events, MessageKind.PLATE_READ, KEYS)
    hunt = retro.Hunt([entry], MessageKind.PLATE_READ, KEYS)
    for i in range(0, len(events), 4):
        hunt.feed(events[i:i + 4])
    chunked = hunt.alerts()
    assert sorted(schemas.encode(a) for a in chunked) == sorted(schemas.encode(a) for a in whole)
    assert hunt.events == len(events) and {a.details["sightings"] for a in chunked} == {5}
    assert all(s[0].snapshot_jpeg is None for s in hunt.seen.values())  # nothing of the snapshot is kept


def test_vehicle_alert_carries_what_the_operator_compares():
    entry = VehicleEntry(entry_id="v-1", plate="京A8B123", category=Category.STOLEN_VEHICLE, priority=2)
    r = read("京A88123", "cp-1", 0)
    (m, *_) = VehicleIndex([entry]).match(r.plate, r.captured_at)
    a = watch_alerts.vehicle_alert(r, m, entry.plate, KEYS.of(entry.plate))
    assert (a.details["plate_read"], a.details["plate_listed"], a.details["explanation"]) == (
        "京A88123", "京A8B123", "8→B at position 4")
    assert a.severity.value == "high" and "verify" in a.summary


def test_silent_hotel_is_judged_against_its_own_rhythm():
    state = compliance.HotelState()
    t = datetime(2026, 11, 2, 0, tzinfo=CN)
    for i in range(3 * 7 * 144):  # a busy hotel: a registration every 10 minutes, day and night, 3 weeks
        state, _ = compliance.registered(state, "h-1", t + timedelta(minutes=10 * i))
    last = state.last_at
    assert compliance.usual_gap(state, last, compliance.SilenceConfig()) < 3600
    state, alerts = compliance.silence(state, "h-1", last + timedelta(minutes=59))
    assert alerts == []
    state, alerts = compliance.silence(state, "h-1", last + timedelta(hours=3))
    assert [(a.type, a.state.value, a.since) for a in alerts] == [("hotel-silent", "firing", last + timedelta(hours=1))]
    assert compliance.silence(state, "h-1", last + timedelta(hours=4))[1] == []  # once
    state, alerts = compliance.registered(state, "h-1", last + timedelta(hours=5))
    assert [(a.type, a.state.value) for a in alerts] == [("hotel-silent", "cleared")]


def test_a_new_hotel_is_not_judged_before_it_has_a_history():
    state, _ = compliance.registered(compliance.HotelState(), "h-2", T0)
    assert compliance.silence(state, "h-2", T0 + timedelta(days=2))[1] == []


def test_late_upload_alert():
    a = compliance.late_upload_alert("h-1", "g-7", 3600, T0)
    assert a.type == "hotel-late-upload" and a.details["delay_s"] == 3600 and "60 min" in a.summary
