"""The pseudonym key the processors share (settings.privacy), as ``privacy.Pseudonyms``.

Production sets ``SAFECITY_PRIVACY__PSEUDONYM_KEY`` (the same on every worker and retro-hunter:
pseudonyms must agree across them and across restarts). Without it, development and tests use a
random key created once in ``<run_dir>/pseudonym.key`` (mode 0600) and read by every process that
shares the run directory; it is never logged."""

from __future__ import annotations

import os
import secrets
import time

from models.settings import Settings
from processors.rules.privacy import MIN_KEY_BYTES, Pseudonyms


def pseudonyms(settings: Settings) -> Pseudonyms:
    p = settings.privacy
    if p.pseudonym_key is not None:
        return Pseudonyms(p.pseudonym_key.get_secret_value().encode(), p.pseudonym_key_id)
    path = settings.services.run_dir / "pseudonym.key"
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
    return Pseudonyms(key.encode(), p.pseudonym_key_id)
