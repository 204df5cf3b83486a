"""GB 11643 ID numbers and GA 36 plates: rules and command-line contracts, plus properties."""

import json
import random
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices import generators
from processors.rules.idnumber import check_id, normalize_id
from processors.rules.plates import check_plate

ROOT = Path(__file__).resolve().parents[2]
TODAY = date(2026, 11, 29)


@pytest.mark.parametrize(("text", "normalized", "born", "sex"), [
    ("11010519491231002X", "11010519491231002X", "1949-12-31", "F"),
    ("440524188001010014", "440524188001010014", "1880-01-01", "M"),
    ("11010519491231002x", "11010519491231002X", "1949-12-31", "F"),
    ("１１０１０５１９４９１２３１００２Ｘ", "11010519491231002X", "1949-12-31", "F"),  # full width
    (" 110105 19491231 002X ", "11010519491231002X", "1949-12-31", "F"),
    ("110105491231002", "11010519491231002X", "1949-12-31", "F"),  # legacy 15 digits, upgraded
])
def test_valid_ids(text, normalized, born, sex):
    r = check_id(text, TODAY)
    assert (r.valid, r.normalized, r.birth_date.isoformat(), r.sex, r.region_code) == (True, normalized, born, sex,
                                                                                        normalized[:6])


@pytest.mark.parametrize(("text", "reason"), [
    ("", "empty"), ("1101051949123100", "length 16"), ("11010519491231002A", "only digits"),
    ("11010519490230002X", "not a real calendar date"), ("110105203001010011", "future"),
    ("110105194912310021", "check character is 1, expected X"), ("01010519491231002X", "region"),
])
def test_invalid_ids_say_why_without_repeating_the_number(text, reason):
    r = check_id(text, TODAY)
    assert not r.valid and reason in r.reason and (not text or text not in r.reason)


def test_generated_ids_pass():
    rng = random.Random(9)
    assert all(check_id(generators.resident_id(rng), TODAY).valid for _ in range(2000))


@given(st.text(max_size=40))
def test_any_string_gives_a_result_or_a_reason(text):
    r = check_id(text, TODAY)
    assert r.valid or r.reason
    assert isinstance(r.normalized, str)


@given(st.from_regex(r"[0-9]{17}", fullmatch=True))
def test_exactly_one_check_character_is_accepted(first17):
    outcomes = [check_id(first17 + c, TODAY) for c in "0123456789X"]
    dated = [o for o in outcomes if not o.reason or "check character" in o.reason]
    assert len(dated) in (0, 11) and sum(o.valid for o in outcomes) <= 1


@pytest.mark.parametrize(("text", "normalized", "kind"), [
    ("京A12345", "京A12345", "ordinary"), ("京a·123 45", "京A12345", "ordinary"), ("京A-12345", "京A12345", "ordinary"),
    ("京Ａ１２３４５", "京A12345", "ordinary"), ("粤BD12345", "粤BD12345", "new-energy-small"),
    ("粤BFA1234", "粤BFA1234", "new-energy-small"), ("沪A12345D", "沪A12345D", "new-energy-large"),
    ("京A1234学", "京A1234学", "coach"), ("苏E1234挂", "苏E1234挂", "trailer"), ("京A0001警", "京A0001警", "police"),
])
def test_valid_plates_are_classified(text, normalized, kind):
    assert check_plate(text).as_json() == {"valid": True, "normalized": normalized, "kind": kind, "reason": None}


@pytest.mark.parametrize(("text", "reason"), [
    ("", "empty"), ("AB12345", "province"), ("京112345", "issuing-office letter"), ("京IA2345", "issuing-office"),
    ("京AO1234", "I and O"), ("京A1234", "serial of 4"), ("粤B123456", "new-energy"), ("京A12学", "four"),
])
def test_invalid_plates_say_why(text, reason):
    r = check_plate(text)
    assert not r.valid and reason in r.reason and r.kind is None


@given(st.text(max_size=20))
def test_any_plate_string_gives_a_result_or_a_reason(text):
    r = check_plate(text)
    assert (r.valid and r.kind) or (not r.valid and r.reason)


def test_generated_plates_pass():
    rng = random.Random(3)
    assert all(check_plate(generators.plate(rng)[0]).valid for _ in range(2000))


def cli(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "safecity.cli", *args], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_cli_contracts():
    assert cli("id", "check", "11010519491231002x") == {"valid": True, "normalized": "11010519491231002X",
                                                        "birth_date": "1949-12-31", "sex": "F", "region_code": "110105"}
    bad = cli("id", "check", "123")
    assert bad["valid"] is False and bad["reason"] and "birth_date" not in bad
    assert cli("plate", "check", "粤bd 12345") == {"valid": True, "normalized": "粤BD12345",
                                                   "kind": "new-energy-small", "reason": None}


def test_normalize_id_is_idempotent():
    assert normalize_id(normalize_id("１１０ x")) == normalize_id("１１０ x")


@pytest.mark.parametrize("text, found", [
    ("found 张伟 110105198001011234", "an ID number"),  # the example (a wrong check character too)
    ("guest 11010519491231002x checked", "an ID number"),
    ("old card 110105800101123", "an ID number (15 digits)"),
    ("call him on 138 0013 8000", "a phone number"),
    ("+86 13800138000", "a phone number"),
    ("hotel desk 010-62345678", "a phone number"),
    ("checked at the desk, not the listed person", None),
    ("see watch:v-1:cp-001:k1.1f3a9c0d2b4e5f60 and registration g-20261130-000123", None),
    ("ticket 123456789012345678", None),  # 18 digits without a birth date in them
    ("at 2026-11-30 08:15, lane 2", None),
])
def test_personal_data_in_free_text(text, found):
    from models.identity import personal_data_in

    assert personal_data_in(text) == found
