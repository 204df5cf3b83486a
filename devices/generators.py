"""Realistic synthetic data: GA 36 plates, GB 11643 resident ID numbers, guests, gas levels."""

from __future__ import annotations

import random
from datetime import date, timedelta

from models.identity import DIGITS, NEW_ENERGY_MARKS, PLATE_LETTERS, PROVINCES, id_check_character
from models.schemas import PlateColour

# Real county-level region codes (GB/T 2260) used for generated IDs.
REGION_CODES = ("110105", "110108", "310104", "310115", "440305", "440106", "330106", "320102",
                "510107", "420106", "500103", "610113", "370202", "210202", "350203", "440524")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "伟芳娜秀敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰红建国志文斌浩宇欣怡子涵梓轩雨晨思远嘉怡俊杰"
FOREIGN = (("USA", "SMITH JOHN"), ("GBR", "BROWN EMMA"), ("JPN", "SATO HARUTO"), ("KOR", "KIM MINJUN"),
           ("DEU", "MULLER LUKAS"), ("FRA", "MARTIN LEA"), ("RUS", "IVANOV ALEXEI"), ("THA", "SOMCHAI NARONG"))


def resident_id(rng: random.Random, birth: date | None = None, male: bool | None = None) -> str:
    """An 18-character GB 11643 number: region, birth date, sequence (odd: male), check character."""
    birth = birth or date(1940, 1, 1) + timedelta(days=rng.randrange(365 * 66))
    male = rng.random() < 0.5 if male is None else male
    seq = rng.randrange(0, 500) * 2 + (1 if male else 0)
    first17 = f"{rng.choice(REGION_CODES)}{birth:%Y%m%d}{seq:03d}"
    return first17 + id_check_character(first17)


def plate(rng: random.Random) -> tuple[str, PlateColour]:
    """A plate and its colour: ordinary blue/yellow (5-character serial) or new-energy (6)."""
    head = rng.choice(PROVINCES) + rng.choice(PLATE_LETTERS)
    roll = rng.random()
    if roll < 0.10:  # small new-energy: D/F, a letter or digit, four digits
        serial = rng.choice(NEW_ENERGY_MARKS) + rng.choice(PLATE_LETTERS + DIGITS) + _digits(rng, 4)
        return head + serial, PlateColour.GREEN
    if roll < 0.12:  # large new-energy: five digits, D/F
        return head + _digits(rng, 5) + rng.choice(NEW_ENERGY_MARKS), PlateColour.YELLOW_GREEN
    letters = rng.choice((0, 0, 1, 1, 2))  # ordinary serials carry at most two letters
    chars = [rng.choice(PLATE_LETTERS) for _ in range(letters)] + [rng.choice(DIGITS) for _ in range(5 - letters)]
    rng.shuffle(chars)
    return head + "".join(chars), (PlateColour.YELLOW if roll > 0.92 else PlateColour.BLUE)


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(DIGITS) for _ in range(n))


def chinese_name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


def foreign_guest(rng: random.Random) -> tuple[str, str, str]:
    """(nationality, name, passport number)."""
    nationality, name = rng.choice(FOREIGN)
    return nationality, name, rng.choice(PLATE_LETTERS) + _digits(rng, 8)


LOOK_ALIKES = {"0": "D", "D": "0", "8": "B", "B": "8", "5": "S", "S": "5", "2": "Z", "Z": "2", "6": "G", "G": "6"}


def ocr_noise(plate_text: str, rng: random.Random, probability: float) -> str:
    """Now and then, one character read as its look-alike (what checkpoint OCR does)."""
    positions = [i for i, c in enumerate(plate_text) if i > 1 and c in LOOK_ALIKES]
    if not positions or rng.random() >= probability:
        return plate_text
    i = rng.choice(positions)
    return plate_text[:i] + LOOK_ALIKES[plate_text[i]] + plate_text[i + 1:]
