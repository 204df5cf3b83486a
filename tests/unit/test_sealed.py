"""Sealed records (models/sealed.py): AES-256-GCM bound to topic and key, rotatable."""

import os

import pytest

from models.sealed import SealError, Sealer, is_sealed

REG = '{"guest_name":"欧阳锋测试","id_number":"11010519491231002X"}'.encode()
TOPIC = "safecity.registrations.v1"


def test_a_sealed_record_opens_only_where_it_belongs():
    s = Sealer({"d1": os.urandom(32)}, "d1")
    sealed = s.seal(REG, TOPIC, b"hotel-001")
    assert is_sealed(sealed) and "欧阳锋测试".encode() not in sealed and b"11010519491231002X" not in sealed
    assert s.open(sealed, TOPIC, b"hotel-001") == REG
    assert s.seal(REG, TOPIC, b"hotel-001") != sealed  # a fresh nonce each time
    for topic, key in ((TOPIC, b"hotel-002"), ("safecity.dead-letters.v1", b"hotel-001")):
        with pytest.raises(SealError, match="another topic or key"):
            s.open(sealed, topic, key)


def test_an_altered_or_foreign_value_does_not_open():
    s = Sealer({"d1": os.urandom(32)}, "d1")
    sealed = bytearray(s.seal(REG, TOPIC, b"h"))
    sealed[-10] ^= 1  # a bit of the ciphertext (inside the base64)
    with pytest.raises(SealError):
        s.open(bytes(sealed), TOPIC, b"h")
    with pytest.raises(SealError, match="not a sealed value"):
        s.open(REG, TOPIC, b"h")
    other = Sealer({"d9": os.urandom(32)}, "d9").seal(REG, TOPIC, b"h")
    with pytest.raises(SealError, match="no key 'd9'"):
        s.open(other, TOPIC, b"h")


def test_keys_rotate():
    old, new = os.urandom(32), os.urandom(32)
    sealed_before = Sealer({"d1": old}, "d1").seal(REG, TOPIC, b"h")
    rotated = Sealer({"d1": old, "d2": new}, "d2")
    assert rotated.open(sealed_before, TOPIC, b"h") == REG
    assert b'"kid":"d2"' in rotated.seal(REG, TOPIC, b"h")
    assert "d1" in repr(rotated) and old.hex() not in repr(rotated)


def test_bad_keys_are_refused():
    with pytest.raises(ValueError, match="32 bytes"):
        Sealer({"d1": b"short"}, "d1")
    with pytest.raises(ValueError, match="current"):
        Sealer({"d1": os.urandom(32)}, "d2")
