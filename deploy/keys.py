"""The secret keys the pipeline's processes share (settings.privacy): the pseudonym key, as
``privacy.Pseudonyms``, and the audit trail's key.

Production sets ``SAFECITY_PRIVACY__PSEUDONYM_KEY`` (the same on every worker and retro-hunter:
pseudonyms must agree across them and across restarts) and ``SAFECITY_PRIVACY__AUDIT_KEY`` (the alert
service, which writes the trail, and auditors, who verify it). Without them, development and tests
use random keys created once in ``<run_dir>/<name>.key`` (mode 0600) and read by every process that
shares the run directory; keys are never logged."""

from __future__ import annotations

import os
import secrets
import time

from pydantic import SecretStr

from models.privacy import MIN_KEY_BYTES, Pseudonyms
from models.sealed import Sealer
from models.settings import Settings


def pseudonyms(settings: Settings) -> Pseudonyms:
    return Pseudonyms(_secret(settings, settings.privacy.pseudonym_key, "pseudonym").encode(),
                      settings.privacy.pseudonym_key_id)


def audit_key(settings: Settings) -> bytes:
    key = _secret(settings, settings.privacy.audit_key, "audit")
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"the audit key needs at least {MIN_KEY_BYTES} bytes")
    return key.encode()


def sealer(settings: Settings) -> Sealer:
    """Seals (ingest) and opens (workers, retro-hunter) registrations: SAFECITY_PRIVACY__DATA_KEY, or a
    random key in <run_dir>/data.key; previous keys still open what they sealed."""
    p = settings.privacy
    keys = {}
    if p.previous_data_keys is not None:
        for part in p.previous_data_keys.get_secret_value().split(","):
            kid, _, hexkey = part.strip().partition(":")
            keys[kid] = _hex_key(hexkey, f"previous data key {kid!r}")
    keys[p.data_key_id] = _hex_key(_secret(settings, p.data_key, "data"), "the data key")
    return Sealer(keys, p.data_key_id)


def _secret(settings: Settings, configured: SecretStr | None, name: str) -> str:
    """The configured secret, or the local one of that name (development, tests, the demo)."""
    return configured.get_secret_value() if configured is not None else local_key(settings, name)


def _hex_key(text: str, what: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise ValueError(f"{what} must be 64 hex digits") from None
    if len(key) != 32:
        raise ValueError(f"{what} must be 64 hex digits (32 bytes)")
    return key


def local_key(settings: Settings, name: str) -> str:
    path = settings.services.run_dir / f"{name}.key"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # the first process creates it; the others (and later runs) read the same key
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    except FileExistsError:
        pass
    key = path.read_text().strip()
    while len(key) < 2 * MIN_KEY_BYTES:  # another process is still writing it
        time.sleep(0.01)
        key = path.read_text().strip()
    return key
