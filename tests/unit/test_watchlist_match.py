"""Watch-list matching: vehicles (exact, OCR look-alikes, province, candidates) and persons."""

import json
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.rules import watchlist as wl

ROOT = Path(__file__).resolve().parents[2]
VEHICLES = """entry_id,plate,category,priority,valid_from,valid_until
v-1,京A8B123,stolen-vehicle,1,2026-01-01,
v-2,粤BD12345,wanted-vehicle,2,,
v-3,沪A12345,stolen-vehicle,3,2020-01-01,2021-01-01
v-4,京A8B124,wanted-vehicle,2,,
"""
PERSONS = """entry_id,name,id_number,birth_date_from,birth_date_to,category,priority,valid_from,valid_until
p-1,,11010519491231002X,,,wanted-person,1,,
p-2,张伟,,1980-01-01,1985-12-31,missing-person,2,,
p-3,李娜,,,,wanted-person,3,,
p-4,SMITH JOHN,E12345678,,,wanted-person,2,,
"""
NOW = datetime(2026, 11, 29, tzinfo=UTC)


@pytest.fixture(scope="module")
def vehicles():
    return wl.VehicleIndex(wl.parse_vehicles(VEHICLES))


@pytest.fixture(scope="module")
def persons():
    text = PERSONS.replace("category,priority,valid_from,valid_until",
                           "category,priority,valid_from,valid_until,id_type,nationality")
    lines = text.strip().split("\n")
    lines = [lines[0]] + [ln + (",passport,USA" if ln.startswith("p-4") else ",,") for ln in lines[1:]]
    return wl.PersonIndex(wl.parse_persons("\n".join(lines) + "\n"))


def best(matches):
    return (matches[0].entry_id, matches[0].kind, matches[0].alert) if matches else None


@pytest.mark.parametrize(("read", "expected", "why"), [
    ("京A8B123", ("v-1", "exact", True), "exact plate match"),
    ("京A·8B 123", ("v-1", "exact", True), "exact plate match"),
    ("京A88123", ("v-1", "ocr-equivalent", True), "8→B at position 4"),
    ("粤BD1234S", ("v-2", "ocr-equivalent", True), "S→5 at position 8"),
    ("粤BD1Z345", ("v-2", "ocr-equivalent", True), "Z→2"),
    ("A8B123", ("v-1", "partial", True), "province missing"),
    ("粤A8B123", ("v-1", "partial", True), "province 粤→京"),
    ("京A8B12E", ("v-1", "candidate", False), "not an OCR look-alike"),
    ("沪A12345", None, ""),  # expired entry never matches
    ("鲁C99999", None, ""),
])
def test_vehicle_matches(vehicles, read, expected, why):
    matches = vehicles.match(read, NOW)
    assert best(matches) == expected
    if expected:
        assert why.split("→")[0] in matches[0].explanation or why in matches[0].explanation


def test_forced_look_alikes_score_higher_than_ambiguous_ones(vehicles):
    # S in an all-digit position can only be a misread 5; 8 for B in an ordinary serial could be real
    forced = vehicles.match("粤BD1234S", NOW)[0].score
    ambiguous = vehicles.match("京A88123", NOW)[0].score
    assert forced > ambiguous >= 0.8
    assert [m.score for m in vehicles.match("京A8B123", NOW)] == sorted((m.score for m in vehicles.match("京A8B123", NOW)),
                                                                       reverse=True)


def test_validity_window_and_deletion():
    idx = wl.VehicleIndex(wl.parse_vehicles(VEHICLES))
    assert idx.match("京A8B123", datetime(2025, 6, 1, tzinfo=UTC))[0].entry_id == "v-4"  # v-1 not yet valid
    idx.remove("v-1")
    assert "v-1" not in {m.entry_id for m in idx.match("京A8B123", NOW)}
    assert len(idx) == 3 and "v-1" not in idx.entries


def test_person_matches(persons):
    assert best(persons.match(id_number="11010519491231002x", at=NOW)) == ("p-1", "exact", True)
    assert best(persons.match(id_number="110105491231002", at=NOW)) == ("p-1", "exact", True)  # legacy 15
    assert best(persons.match(name="张伟", birth_date=date(1982, 5, 1), at=NOW)) == ("p-2", "name-dob", True)
    homophone = persons.match(name="章玮", birth_date=date(1982, 5, 1), at=NOW)
    assert best(homophone) == ("p-2", "pinyin", True) and homophone[0].score < 0.85
    assert persons.match(name="张伟", birth_date=date(1990, 5, 1), at=NOW) == []
    assert best(persons.match(name="张伟", at=NOW)) == ("p-2", "candidate", False)
    assert best(persons.match(name="李娜", birth_date=date(1990, 1, 1), at=NOW)) == ("p-3", "candidate", False)
    assert best(persons.match(id_number="E12345678", nationality="USA", at=NOW)) == ("p-4", "exact", True)
    assert best(persons.match(id_number="E12345678", nationality="GBR", at=NOW)) == ("p-4", "candidate", False)


@pytest.mark.parametrize(("csv", "line"), [
    ("entry_id,plate,category,priority,valid_from,valid_until\nv,京A12345,stolen-vehicle,1,,\nw,京AO1234,"
     "stolen-vehicle,1,,\n", 3),
    ("entry_id,plate,category,priority,valid_from,valid_until\nv,京A12345,wanted-person,1,,\n", 2),
    ("entry_id,plate,category,priority,valid_from,valid_until\nv,京A12345,stolen-vehicle,9,,\n", 2),
    ("entry_id,plate,category,priority,valid_from,valid_until\nv,京A12345,stolen-vehicle,1,yesterday,\n", 2),
    ("entry_id,plate\nv,京A12345\n", 1),
])
def test_malformed_vehicle_rows_name_the_line(csv, line):
    with pytest.raises(wl.WatchlistError) as err:
        wl.parse_vehicles(csv)
    assert err.value.line == line


def test_person_rows_with_invalid_ids_never_echo_the_number():
    text = PERSONS.split("\n")[0] + "\nx,,110105194912310021,,,wanted-person,1,,\n"
    with pytest.raises(wl.WatchlistError) as err:
        wl.parse_persons(text)
    assert err.value.line == 2 and "110105194912310021" not in str(err.value)


@given(st.text(max_size=12))
def test_any_read_gives_matches_or_none_never_an_error(read):
    idx = wl.VehicleIndex(wl.parse_vehicles(VEHICLES))
    for m in idx.match(read, NOW):
        assert 0 <= m.score <= 1 and m.explanation and m.alert == (m.score >= wl.ALERT_THRESHOLD)


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "safecity.cli", "watchlist", "match", *args], capture_output=True,
                          text=True, cwd=ROOT)


def test_cli_match_contract(tmp_path):
    v, p = tmp_path / "v.csv", tmp_path / "p.csv"
    v.write_text(VEHICLES)
    p.write_text("".join(line + "\n" for line in PERSONS.splitlines() if not line.startswith("p-4")))
    out = json.loads(run("--vehicles", str(v), "--plate", "京A88123").stdout)
    assert out[0] == {"entry_id": "v-1", "score": 0.85, "kind": "ocr-equivalent", "alert": True,
                      "explanation": "8→B at position 4"}
    assert [m["score"] for m in out] == sorted((m["score"] for m in out), reverse=True)
    assert json.loads(run("--vehicles", str(v), "--plate", "鲁C99999").stdout) == []
    out = json.loads(run("--persons", str(p), "--name", "章玮", "--birth-date", "1983-03-03").stdout)
    assert out[0]["kind"] == "pinyin"
    assert json.loads(run("--persons", str(p), "--id", "11010519491231002X").stdout)[0]["kind"] == "exact"


def test_cli_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(VEHICLES + "v-9,京AO0000,stolen-vehicle,1,,\n")
    out = run("--vehicles", str(bad), "--plate", "京A12345")
    assert out.returncode == 2 and "line 6" in out.stderr
    out = run("--vehicles", str(tmp_path / "none.csv"), "--plate", "京A12345")
    assert out.returncode == 2 and "cannot read" in out.stderr


def test_content_hash_ignores_when_an_entry_was_listed_but_not_what_it_says():
    from datetime import UTC, datetime

    import msgspec

    from models.watchlist import Category, VehicleEntry, content_hash

    e = VehicleEntry(entry_id="v-1", plate="京A8B123", category=Category.STOLEN_VEHICLE)
    listed = msgspec.structs.replace(e, listed_at=datetime(2026, 11, 29, tzinfo=UTC))
    assert content_hash(e) == content_hash(listed)
    assert content_hash(e) != content_hash(msgspec.structs.replace(e, priority=1))


def test_removed_and_replaced_entries_are_reclaimed():
    from processors.rules import hashindex
    from processors.rules.watchlist import PersonIndex, VehicleIndex
    from models.watchlist import Category, PersonEntry, VehicleEntry

    plates = [f"京A{n:05d}" for n in range(30_000)]
    index = VehicleIndex([VehicleEntry(entry_id=f"v-{n}", plate=p, category=Category.STOLEN_VEHICLE)
                          for n, p in enumerate(plates)])
    for n in range(0, 25_000):  # a re-import that changes most entries, then deletions
        index.upsert(VehicleEntry(entry_id=f"v-{n}", plate=plates[n], category=Category.WANTED_VEHICLE, priority=2))
    for n in range(25_000, 29_000):
        index.remove(f"v-{n}")
    assert index.entries.holes <= max(hashindex.RECLAIM_MIN, len(index.entries))
    assert len(index.by_plate.keys) + index.by_plate.size <= 2 * max(hashindex.RECLAIM_MIN, len(index)) + len(index)
    exact = [m.entry_id for m in index.match("京A00007") if m.kind == "exact"]
    assert exact == ["v-7"] and not [m for m in index.match("京A26000") if m.kind == "exact"]
    assert index.entries["v-7"].category == Category.WANTED_VEHICLE and len(index) == 26_000

    people = PersonIndex([PersonEntry(entry_id=f"p-{n}", id_number=f"ID{n:08d}", category=Category.WANTED_PERSON)
                          for n in range(12_000)])
    for n in range(11_000):
        people.remove(f"p-{n}")
    assert people.entries.holes <= hashindex.RECLAIM_MIN and len(people) == 1_000
    assert [m.entry_id for m in people.match(id_number="ID00011500") if m.kind == "exact"] == ["p-11500"]


@given(st.sampled_from(["京A8B123", "京A88123", "A8B123", "粤BD12345", "粤B012345", "京A8B124", "沪A12345",
                        "京A8B12X", "鲁C12345"]))
def test_the_benchmarks_dict_baseline_finds_exactly_what_the_index_finds(read):
    """bench.watchlist_bench compares the compact index with a plain dict of the same keys: the same
    work, so the same matches."""
    from processors.rules.hashindex import DictIndex

    entries = wl.parse_vehicles(VEHICLES)
    assert wl.VehicleIndex(entries, index=DictIndex).match(read, NOW) == wl.VehicleIndex(entries).match(read, NOW)


def test_the_replica_rebuilds_an_index_with_the_collector_paused_and_keeps_the_result_frozen():
    """A reclaim allocates millions of objects on a thread; with the cyclic collector on, that ran full
    collections back to back in the worker, each holding its loop. The collector is paused for the
    rebuild only (back on afterwards, also after a failure) and the new index is frozen."""
    import asyncio
    import gc

    from models import schemas, topics
    from models.settings import KafkaSettings
    from models.watchlist import Category, VehicleEntry
    from processors.rules import hashindex
    from processors.watchlists import WatchlistReplica

    replica = WatchlistReplica(KafkaSettings())
    entries = [VehicleEntry(entry_id=f"v{i}", plate=f"京A{i:05d}", category=Category.STOLEN_VEHICLE)
               for i in range(3 * hashindex.RECLAIM_MIN)]
    for e in entries:
        replica.apply(topics.KAFKA_WATCHLIST_VEHICLES, e.entry_id.encode(), schemas.encode(e))
    for e in entries[: 2 * hashindex.RECLAIM_MIN + 1]:
        replica.apply(topics.KAFKA_WATCHLIST_VEHICLES, e.entry_id.encode(), None)
    old = replica.vehicles
    assert old.entries.needs_reclaim()
    gc.unfreeze()
    try:
        asyncio.run(replica.reclaim())
        assert gc.isenabled() and gc.get_freeze_count() > 0
        assert replica.vehicles is not old and len(replica.vehicles) == len(entries) - 2 * hashindex.RECLAIM_MIN - 1
        assert replica.vehicles.match(entries[-1].plate)[0].entry_id == entries[-1].entry_id
    finally:
        gc.unfreeze()


def test_the_replica_merges_an_index_on_a_thread_while_it_answers_lookups(monkeypatch):
    """A merge copies a whole index part (a re-import of a million vehicles merges some 150 times, each
    0.14 s at 12M keys); inline, it held the worker's loop and live matching for up to 1.6 s at a time.
    The replica's indexes never merge as entries are applied: the replica merges them on a thread, and
    keeps doing so in the index a reclaim builds."""
    import asyncio
    import threading

    from models import schemas, topics
    from models.settings import KafkaSettings
    from models.watchlist import Category, VehicleEntry
    from processors.rules import hashindex
    from processors.watchlists import WatchlistReplica

    monkeypatch.setattr(hashindex, "COMPACT_AT", 100)
    merged_on, merge = [], hashindex.HashIndex.merged
    monkeypatch.setattr(hashindex.HashIndex, "merged",
                        lambda self: (merged_on.append(threading.get_ident()), merge(self))[1])
    replica = WatchlistReplica(KafkaSettings())
    entries = [VehicleEntry(entry_id=f"v{i}", plate=f"京A{i:05d}", category=Category.STOLEN_VEHICLE)
               for i in range(3 * hashindex.RECLAIM_MIN)]
    for e in entries:
        replica.apply(topics.KAFKA_WATCHLIST_VEHICLES, e.entry_id.encode(), schemas.encode(e))
    parts = replica.vehicles.merges_due()
    assert not merged_on and len(parts) == 3 and all(p.size == len(p.extra_keys) >= len(entries) for p in parts)

    async def maintain_while_matching() -> int:
        task, lookups = asyncio.create_task(replica.maintain()), 0
        while not task.done():  # the loop is free to match while the merges run
            assert replica.vehicles.match(entries[lookups % len(entries)].plate)[0].kind == "exact"
            lookups += 1
            await asyncio.sleep(0)
        await task
        return lookups

    assert asyncio.run(maintain_while_matching()) > 0
    assert merged_on and threading.get_ident() not in merged_on
    assert not replica.vehicles.merges_due() and all(p.size == 0 for p in parts)
    exact = [m.entry_id for m in replica.vehicles.match(entries[-1].plate) if m.kind == "exact"]
    assert exact == [entries[-1].entry_id]

    for e in entries[: 2 * hashindex.RECLAIM_MIN + 1]:  # enough removed for a reclaim: the new index too
        replica.apply(topics.KAFKA_WATCHLIST_VEHICLES, e.entry_id.encode(), None)
    asyncio.run(replica.reclaim())
    for e in entries[:500]:
        replica.apply(topics.KAFKA_WATCHLIST_VEHICLES, e.entry_id.encode(), schemas.encode(e))
    assert len(replica.vehicles.merges_due()) == 3  # left to the replica, as before the reclaim
