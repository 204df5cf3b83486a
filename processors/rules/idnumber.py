"""Resident identity numbers (GB 11643-1999): normalise, upgrade legacy 15-digit numbers,
validate, and read birth date, sex and region. Any input gives a result or a clear reason."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from models.identity import id_check_character

_SEPARATORS = re.compile(r"[\s\-_.·・]+")


@dataclass(frozen=True)
class IdResult:
    valid: bool
    normalized: str
    reason: str | None = None
    birth_date: date | None = None
    sex: str | None = None  # "M" | "F"
    region_code: str | None = None

    def as_json(self) -> dict:
        out: dict = {"valid": self.valid, "normalized": self.normalized}
        if self.valid:
            out |= {"birth_date": self.birth_date.isoformat(), "sex": self.sex, "region_code": self.region_code}
        else:
            out["reason"] = self.reason
        return out


def normalize_id(text: str) -> str:
    """Full-width digits and letters to ASCII (NFKC), separators and spaces removed, x -> X."""
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", text)).upper()


def upgrade_15(number: str) -> str:
    """A legacy 15-digit number (birth year without century, no check character) as 18 digits."""
    first17 = number[:6] + "19" + number[6:]
    return first17 + id_check_character(first17)


def check_id(text: str, today: date | None = None) -> IdResult:
    today = today or date.today()
    n = normalize_id(text)
    if not n:
        return IdResult(False, n, "empty")
    if len(n) == 15:
        if not n.isdigit():
            return IdResult(False, n, "a 15-character number must be all digits")
        n = upgrade_15(n)
    if len(n) != 18:
        return IdResult(False, n, f"length {len(n)}: a resident ID number has 18 characters (or 15, legacy)")
    if not (n[:17].isascii() and n[:17].isdigit()) or not (n[17].isdigit() or n[17] == "X"):
        return IdResult(False, n, "only digits, and X as the last character, are allowed")
    if n[0] not in "123456789":
        return IdResult(False, n, "region code must start with 1-9")
    try:
        born = date(int(n[6:10]), int(n[10:12]), int(n[12:14]))
    except ValueError:
        return IdResult(False, n, f"birth date {n[6:14]} is not a real calendar date")
    if born > today:
        return IdResult(False, n, "birth date is in the future")
    if born.year < 1850:
        return IdResult(False, n, "birth date is before 1850")
    expected = id_check_character(n[:17])
    if n[17] != expected:
        return IdResult(False, n, f"check character is {n[17]}, expected {expected}")
    return IdResult(True, n, None, born, "M" if int(n[16]) % 2 else "F", n[:6])
