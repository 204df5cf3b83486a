"""Resident identity numbers (GB 11643-1999) and mainland plate alphabet (GA 36): the shared
vocabulary both devices (which generate them) and rules (which validate them) use."""

from __future__ import annotations

import re

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"  # ISO 7064 MOD 11-2: sum mod 11 -> check character


def id_check_character(first17: str) -> str:
    """The check character of an 18-character resident ID number from its first 17 digits."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError("need exactly 17 ASCII digits")
    return ID_CHECK[sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]


# GA 36: one province character, one issuing-office letter, then the serial. I and O are never used.
PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
DIGITS = "0123456789"
NEW_ENERGY_MARKS = "DF"


_ID18 = re.compile(r"(?<![0-9])[1-9][0-9]{16}[0-9Xx](?![0-9Xx])")
_ID15 = re.compile(r"(?<![0-9])[1-9][0-9]{14}(?![0-9])")
_MOBILE = re.compile(r"(?<![0-9])(?:\+?86[- ]?)?1[3-9][0-9](?:[- ]?[0-9]{4}){2}(?![0-9])")
_LANDLINE = re.compile(r"(?<![0-9])0[1-9][0-9]{1,2}-?[2-9][0-9]{6,7}(?![0-9])")


def _is_date(yyyymmdd: str) -> bool:
    from datetime import date

    try:
        return 1900 <= date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8])).year <= 2100
    except ValueError:
        return False


def personal_data_in(text: str) -> str | None:
    """What personal data ``text`` seems to carry (an ID number, a phone number), or None.

    For free text that is kept (operators' reasons and comments, audit details): such text is refused
    with this answer, so nobody copies a guest's number into the record by accident. Names cannot be
    recognised reliably and are not looked for; the rule for operators is to refer to a person by the
    alert or registration id."""
    for m in _ID18.finditer(text):  # ID-shaped with a birth date: a mistyped check character still counts
        if _is_date(m.group(0)[6:14]):
            return "an ID number"
    for m in _ID15.finditer(text):
        if _is_date("19" + m.group(0)[6:12]):
            return "an ID number (15 digits)"
    if _MOBILE.search(text) or _LANDLINE.search(text):
        return "a phone number"
    return None
