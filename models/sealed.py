"""Sealed records: personal data on Kafka encrypted with an authenticated cipher (AES-256-GCM).

Hotel registrations are sealed by ingest before they reach Kafka, whole (name, ID number, birth date,
room and the rest), and opened only where matching needs them (the workers' registration agent, the
retro-hunter); the dead letters of the hotel namespace keep their raw payload sealed the same way. On
the wire a sealed value is JSON::

    {"sealed": "aes-256-gcm", "kid": "d1", "data": "<base64: 12-byte nonce + ciphertext + tag>"}

The associated data binds it to its Kafka topic and key (the hotel id): a sealed registration copied
to another topic or hotel does not open. ``kid`` names the key, so keys rotate: seal with the current
one, open with any still listed (settings.privacy.data_key, previous_data_keys)."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field

import msgspec

ALGORITHM = "aes-256-gcm"


class SealError(ValueError):
    """A sealed value that does not open: unknown key id, altered, or moved to another topic or key."""


class Envelope(msgspec.Struct, forbid_unknown_fields=True):
    sealed: str
    kid: str
    data: str


_decode_envelope = msgspec.json.Decoder(Envelope).decode


@dataclass(frozen=True)
class Sealer:
    keys: dict[str, bytes]  # key id -> 32-byte key
    current: str
    _aead: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if self.current not in self.keys:
            raise ValueError("the current data key id has no key")
        for kid, key in self.keys.items():
            if len(key) != 32:
                raise ValueError(f"data key {kid!r} must be 32 bytes (64 hex digits)")
            self._aead[kid] = AESGCM(key)

    def __repr__(self) -> str:  # keys never in a log line or a traceback
        return f"Sealer(current={self.current!r}, kids={sorted(self.keys)})"

    def seal(self, plaintext: bytes, topic: str, key: bytes) -> bytes:
        nonce = os.urandom(12)
        ct = self._aead[self.current].encrypt(nonce, plaintext, _aad(topic, key))
        return msgspec.json.encode(Envelope(ALGORITHM, self.current, base64.b64encode(nonce + ct).decode()))

    def open(self, value: bytes, topic: str, key: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag

        try:
            env = _decode_envelope(value)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise SealError("not a sealed value") from None
        aead = self._aead.get(env.kid)
        if env.sealed != ALGORITHM or aead is None:
            raise SealError(f"no key {env.kid!r} for {env.sealed!r}")
        try:
            blob = base64.b64decode(env.data, validate=True)
            return aead.decrypt(blob[:12], blob[12:], _aad(topic, key))
        except (ValueError, InvalidTag):
            raise SealError("does not open: altered, or sealed for another topic or key") from None


def is_sealed(value: bytes) -> bool:
    return value.startswith(b'{"sealed":')


def _aad(topic: str, key: bytes) -> bytes:
    return topic.encode() + b"\x00" + key
