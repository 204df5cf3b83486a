"""Keyed pseudonyms (models/privacy.py): stable under one key, not recomputable without it."""

import hashlib
import os

import pytest

from models.identity import id_check_character
from models.privacy import Pseudonyms


def candidates(region: str, year: int):
    """Every ID number a region and a birth year allow (the search that broke the unkeyed hash)."""
    from datetime import date, timedelta

    day = date(year, 1, 1)
    while day.year == year:
        for seq in range(0, 1000, 7):  # a sample of the sequence numbers keeps the test fast
            first17 = f"{region}{day:%Y%m%d}{seq:03d}"
            yield first17 + id_check_character(first17)
        day += timedelta(days=1)


def test_the_same_subject_gets_the_same_pseudonym_under_one_key_only():
    key = Pseudonyms(os.urandom(32), "k1")
    subject = "resident-id:11010519800101123X"
    assert key.of(subject) == key.of(subject) and key.of(subject).startswith("k1.")
    assert key.of(subject) != key.of("resident-id:110105198001011248")
    assert Pseudonyms(os.urandom(32), "k2").of(subject) not in (key.of(subject),)
    assert "secret" not in repr(Pseudonyms(b"secret-secret-secret", "k1"))


def test_a_pseudonym_cannot_be_recomputed_without_the_key():
    key = Pseudonyms(os.urandom(32), "k1")
    number = "11010519800315126" + id_check_character("11010519800315126")  # sequence 126: among the candidates
    target = key.of(f"resident-id:{number}").split(".", 1)[1]
    # the attack on the old scheme: hash every candidate the region and birth year allow
    found = [n for n in candidates("110105", 1980)
             if hashlib.sha256(f"resident-id:{n}".encode()).hexdigest()[:16] == target]
    assert found == []
    # with a guessed key instead of the real one, neither
    guess = Pseudonyms(b"0" * 32, "k1")
    assert all(guess.of(f"resident-id:{n}").split(".")[1] != target for n in candidates("110105", 1980))
    # the same search with the key finds it: the key is what protects the number
    assert [n for n in candidates("110105", 1980) if key.of(f"resident-id:{n}").split(".")[1] == target] == [number]


@pytest.mark.parametrize("key, key_id", [(b"short", "k1"), (b"x" * 32, "K1!"), (b"x" * 32, "")])
def test_weak_keys_and_bad_key_ids_are_refused(key, key_id):
    with pytest.raises(ValueError):
        Pseudonyms(key, key_id)
