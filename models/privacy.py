"""Keyed pseudonyms for the subjects of watch-list leads (a guest's ID, a listed plate).

Wherever a subject is referred to outside the secured record (alert ids, alert details, cooldown
keys, retained MQTT messages, the alert store) it appears as ``<key id>.<HMAC-SHA256(key, subject)>``
truncated to 64 bits. Without the key nobody can recompute it from a guess: an unkeyed hash of an ID
number falls to a search of the few hundred thousand numbers a region and a birth year leave. The
same subject gets the same pseudonym under one key, so repeats and cooldowns still line up; the key
id says which key made it, so a key can be rotated (a subject's leads before and after a rotation
then carry different pseudonyms)."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

KEY_ID = re.compile(r"^[a-z0-9]{1,8}$")
MIN_KEY_BYTES = 16


@dataclass(frozen=True)
class Pseudonyms:
    key: bytes
    key_id: str

    def __post_init__(self) -> None:
        if len(self.key) < MIN_KEY_BYTES:
            raise ValueError(f"a pseudonym key needs at least {MIN_KEY_BYTES} bytes")
        if not KEY_ID.match(self.key_id):
            raise ValueError("a key id is 1-8 lower-case letters or digits")

    def of(self, subject: str) -> str:
        return f"{self.key_id}.{hmac.new(self.key, subject.encode(), hashlib.sha256).hexdigest()[:16]}"

    def __repr__(self) -> str:  # the key never in a log line or a traceback
        return f"Pseudonyms(key_id={self.key_id!r})"
