"""Mainland vehicle plates (GA 36): normalise, validate and classify.

A plate is a province character, an issuing-office letter and a serial: five letters or digits
(ordinary), four and a suffix character (trailer 挂, coach 学, police 警, Hong Kong 港, Macao 澳,
consulate 领, test 试), or six for new-energy vehicles (small: D or F, a letter or digit, four
digits; large: five digits, then D or F). I and O are never used.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from models.identity import PROVINCES

LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
DIGITS = "0123456789"
ALNUM = LETTERS + DIGITS
SUFFIXES = {"挂": "trailer", "学": "coach", "警": "police", "港": "hong-kong", "澳": "macao", "领": "consulate",
            "试": "test"}
_SEPARATORS = re.compile(r"[\s\-_.·・•]+")

# Per format, the characters allowed at each serial position (after province and office letter).
FORMATS: dict[str, tuple[str, ...]] = {
    "ordinary": (ALNUM,) * 5,
    "new-energy-small": ("DF", ALNUM, DIGITS, DIGITS, DIGITS, DIGITS),
    "new-energy-large": (DIGITS,) * 5 + ("DF",),
}


@dataclass(frozen=True)
class PlateResult:
    valid: bool
    normalized: str
    kind: str | None = None
    reason: str | None = None

    def as_json(self) -> dict:
        return {"valid": self.valid, "normalized": self.normalized, "kind": self.kind, "reason": self.reason}


def normalize_plate(text: str) -> str:
    """Full-width characters to half-width (NFKC), upper case, no spaces, dots, dashes or middle dots."""
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", text)).upper()


def serial_format(serial: str) -> str | None:
    """The format a serial (after province and office letter) fits, if any."""
    for name, positions in FORMATS.items():
        if len(serial) == len(positions) and all(c in allowed for c, allowed in zip(serial, positions, strict=True)):
            return name
    return None


def check_plate(text: str) -> PlateResult:
    p = normalize_plate(text)
    if not p:
        return PlateResult(False, p, None, "empty")
    if p[0] not in PROVINCES:
        return PlateResult(False, p, None, "the first character must be a province abbreviation")
    if len(p) < 2 or p[1] not in LETTERS:
        return PlateResult(False, p, None, "the second character must be an issuing-office letter (not I or O)")
    serial = p[2:]
    if "I" in serial or "O" in serial:
        return PlateResult(False, p, None, "the letters I and O are never used on plates")
    if serial and serial[-1] in SUFFIXES:
        body = serial[:-1]
        if len(body) == 4 and all(c in ALNUM for c in body):
            return PlateResult(True, p, SUFFIXES[serial[-1]])
        return PlateResult(False, p, None, f"a {SUFFIXES[serial[-1]]} plate has four letters or digits before {serial[-1]}")
    kind = serial_format(serial)
    if kind is None:
        if len(serial) == 5:
            reason = "the serial may hold only letters (not I or O) and digits"
        elif len(serial) == 6:
            reason = "a six-character serial must be new-energy: D/F + letter or digit + 4 digits, or 5 digits + D/F"
        else:
            reason = f"serial of {len(serial)} characters: ordinary plates have 5, new-energy plates 6"
        return PlateResult(False, p, None, reason)
    return PlateResult(True, p, kind)
