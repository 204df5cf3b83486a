"""Watch-list entries: versioned data, published to compacted Kafka topics keyed by entry id
(a deletion is a tombstone). Matches are leads for a person to verify, never automatic action."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Annotated

import msgspec

EntryId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]


class Category(enum.StrEnum):
    WANTED_PERSON = "wanted-person"
    MISSING_PERSON = "missing-person"
    STOLEN_VEHICLE = "stolen-vehicle"
    WANTED_VEHICLE = "wanted-vehicle"


VEHICLE_CATEGORIES = frozenset({Category.STOLEN_VEHICLE, Category.WANTED_VEHICLE})
PERSON_CATEGORIES = frozenset({Category.WANTED_PERSON, Category.MISSING_PERSON})


class _Entry(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, gc=False):
    # gc=False: an entry holds only strings, numbers and datetimes, so it can never be part of a
    # reference cycle; a worker holds millions of them, and untracked they cost the cyclic garbage
    # collector nothing (each full collection walked them all: ~0.4 s pauses during an import).
    entry_id: EntryId
    category: Category
    priority: Annotated[int, msgspec.Meta(ge=1, le=5)] = 3  # 1 most urgent
    valid_from: datetime | None = None
    valid_until: datetime | None = None  # expired entries never match
    note: Annotated[str, msgspec.Meta(max_length=500)] = ""
    version: int = 1
    listed_at: datetime | None = None  # when it was published; live matching covers what comes after

    def active(self, at: datetime) -> bool:
        return (self.valid_from is None or self.valid_from <= at) and (self.valid_until is None or at < self.valid_until)


def content_hash(entry: _Entry) -> str:
    """What an entry says, without when it was published: an unchanged re-import has the same hash."""
    import hashlib

    return hashlib.sha256(msgspec.json.encode(msgspec.structs.replace(entry, listed_at=None, version=1))).hexdigest()


class VehicleEntry(_Entry, frozen=True, kw_only=True):
    plate: str  # normalised GA 36 plate


class PersonEntry(_Entry, frozen=True, kw_only=True):
    name: str | None = None
    id_number: str | None = None  # normalised resident ID number, or a passport number
    id_type: str = "resident-id"
    nationality: str | None = None  # ISO 3166-1 alpha-3, for passports
    birth_date_from: date | None = None
    birth_date_to: date | None = None


class WatchlistMatch(msgspec.Struct, frozen=True, kw_only=True):
    entry_id: str
    score: float
    kind: str  # exact | ocr-equivalent | partial | candidate | name-dob | pinyin
    alert: bool
    explanation: str
    category: str = ""
    priority: int = 3
