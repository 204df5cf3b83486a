"""Generated IDs pass GB 11643's check-character rule; generated plates match GA 36."""

import random
import re
from datetime import date

import pytest

from devices import generators
from models.identity import PROVINCES, id_check_character

# GA 36, written out independently of the generator: province + office letter + serial.
L = "A-HJ-NP-Z"  # letters without I and O
ORDINARY = re.compile(rf"^[{PROVINCES}][{L}][{L}0-9]{{5}}$")
NEW_ENERGY_SMALL = re.compile(rf"^[{PROVINCES}][{L}][DF][{L}0-9][0-9]{{4}}$")
NEW_ENERGY_LARGE = re.compile(rf"^[{PROVINCES}][{L}][0-9]{{5}}[DF]$")


def mod11_2(first17: str) -> str:
    """ISO 7064 MOD 11-2 from its definition: check c such that sum(a_i * 2^(i-1)) + c = 1 mod 11."""
    total = sum(int(ch) * pow(2, 17 - i, 11) for i, ch in enumerate(first17))
    c = (12 - total % 11) % 11
    return "X" if c == 10 else str(c)


@pytest.mark.parametrize("known", ["11010519491231002X", "440524188001010014"])
def test_known_valid_numbers(known):
    assert id_check_character(known[:17]) == known[17]


def test_weights_table_agrees_with_the_iso_definition():
    rng = random.Random(1)
    for _ in range(2000):
        first17 = "".join(rng.choice("0123456789") for _ in range(17))
        assert id_check_character(first17) == mod11_2(first17)


def test_generated_ids_are_valid():
    rng = random.Random(42)
    for _ in range(5000):
        number = generators.resident_id(rng)
        assert re.fullmatch(r"\d{17}[\dX]", number)
        assert number[17] == mod11_2(number[:17])
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
        assert date(1940, 1, 1) <= born < date(2007, 1, 1)


def test_sequence_parity_encodes_sex():
    rng = random.Random(3)
    assert int(generators.resident_id(rng, male=True)[16]) % 2 == 1
    assert int(generators.resident_id(rng, male=False)[16]) % 2 == 0


def test_generated_plates_match_ga36():
    rng = random.Random(42)
    kinds = {"ordinary": 0, "small": 0, "large": 0}
    for _ in range(5000):
        text, colour = generators.plate(rng)
        assert "I" not in text[1:] and "O" not in text[1:]
        if ORDINARY.match(text):
            kinds["ordinary"] += 1
            assert colour.value in ("blue", "yellow")
            assert sum(ch.isalpha() for ch in text[2:]) <= 2
        elif NEW_ENERGY_SMALL.match(text):
            kinds["small"] += 1
            assert colour.value == "green"
        elif NEW_ENERGY_LARGE.match(text):
            kinds["large"] += 1
            assert colour.value == "yellow-green"
        else:
            pytest.fail(f"{text} fits no GA 36 format")
    assert all(kinds.values()), kinds
