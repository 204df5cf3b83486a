"""Resident identity numbers (GB 11643-1999) and mainland plate alphabet (GA 36): the shared
vocabulary both devices (which generate them) and rules (which validate them) use."""

from __future__ import annotations

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
