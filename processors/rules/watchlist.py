"""Watch-list matching for plate reads and guest registrations (pure code, in-memory indexes).

Scores (alert at or above ``ALERT_THRESHOLD``):

=================  =====  ========================================================================
kind               score  when
=================  =====  ========================================================================
exact              1.00   the normalised plate, ID number, or passport number and nationality agree
ocr-equivalent     0.90   the plate differs only by OCR look-alikes (0/O/D/Q, 1/I, 2/Z, 5/S, 8/B,
                          6/G); -0.05 for each one the format would also allow as a real character
partial            0.75   the province character is missing or misread, the rest agrees (OCR-wise)
name-dob           0.85   same name, birth date inside the entry's range (entries without ID)
pinyin             0.65   same name by pinyin (a homophone spelling), birth date inside the range
candidate          0.50   one plate character differs beyond look-alikes, a passport number with
                          another nationality, or a name with no birth date to check: for review
=================  =====  ========================================================================
"""

from __future__ import annotations

import csv
import io
import unicodedata
from array import array
from collections.abc import Iterable
from datetime import UTC, date, datetime

import msgspec

from models.identity import PROVINCES
from models.watchlist import (PERSON_CATEGORIES, VEHICLE_CATEGORIES, Category, PersonEntry, VehicleEntry,
                              WatchlistMatch)
from processors.rules import plates
from processors.rules.hashindex import EntryStore, HashIndex
from processors.rules.idnumber import check_id, normalize_id

ALERT_THRESHOLD = 0.6
OCR_CLASSES = ("0ODQ", "1I", "2Z", "5S", "8B", "6G")
_CLASS = str.maketrans({c: cls[0] for cls in OCR_CLASSES for c in cls})


def skeleton(text: str) -> str:
    """Each OCR look-alike replaced by its class's first member."""
    return text.translate(_CLASS)


def _match(entry, score: float, kind: str, explanation: str, threshold: float) -> WatchlistMatch:
    score = round(max(0.0, min(1.0, score)), 3)
    return WatchlistMatch(entry_id=entry.entry_id, score=score, kind=kind, alert=score >= threshold,
                          explanation=explanation, category=entry.category.value, priority=entry.priority)


# --------------------------------------------------------------------------- vehicles
def _gap(province: str, rest_skel: str, i: int) -> str:
    """A plate with one serial position blanked; the province is part of the key (a candidate must
    agree on it), so a read has a handful of neighbours to check, not hundreds."""
    return f"{province}{rest_skel[:i]}?{rest_skel[i + 1:]}"


class _Reclaiming:
    """Removal for both indexes: a removed entry's keys stay and its dead ordinal is skipped at
    lookup, until the dead outnumber the living; then the index is rebuilt without them. And the
    maintenance of both: inline by default, or left to an owner that runs it on a thread."""

    PARTS: tuple[str, ...]  # the HashIndex attributes
    entries: EntryStore
    threshold: float
    index: type
    reclaim_inline: bool  # a replica turns this off and swaps in reclaimed() built on a thread

    def maintain_inline(self, inline: bool) -> None:
        """Off: removals never rebuild the index and additions never merge a part's overlay; the
        owner does both, on a thread (``reclaimed()``, ``merges_due()``), and swaps the result in."""
        self.reclaim_inline = inline
        for name in self.PARTS:
            getattr(self, name).merge_inline = inline

    def merges_due(self) -> list:
        """The parts (HashIndex) whose overlay is due to be merged."""
        return [part for name in self.PARTS if (part := getattr(self, name)).merge_due()]

    def remove(self, entry_id: str) -> None:
        self.entries.pop(entry_id)
        if self.reclaim_inline and self.entries.needs_reclaim():
            fresh = self.reclaimed()
            for name in ("entries", *self.PARTS):
                setattr(self, name, getattr(fresh, name))

    def reclaimed(self):
        """The same index without its removed entries; this one is not changed, so a caller may
        build it on a thread while this one still answers lookups, then swap."""
        fresh = type(self)(threshold=self.threshold, index=self.index)
        fresh.entries, remap = self.entries.reclaimed()
        for name in self.PARTS:
            setattr(fresh, name, getattr(self, name).retained(remap))
        fresh.maintain_inline(self.reclaim_inline)
        return fresh


class VehicleIndex(_Reclaiming):
    """Exact plate, OCR skeleton (all but the province) and one-position-blanked skeletons, each a
    HashIndex; candidates are verified against the entry itself, so a hash collision never matches."""

    PARTS = ("by_plate", "by_rest", "by_gap")

    def __init__(self, entries: Iterable[VehicleEntry] = (), threshold: float = ALERT_THRESHOLD,
                 index: type = HashIndex) -> None:
        self.threshold, self.index = threshold, index  # index: HashIndex, or DictIndex (the benchmark's baseline)
        self.reclaim_inline = True
        self.entries: EntryStore[VehicleEntry] = EntryStore()
        self.by_plate, self.by_rest, self.by_gap = index(), index(), index()
        self._bulk(list(entries))

    def __len__(self) -> int:
        return len(self.entries)

    @staticmethod
    def _keys(plate: str) -> tuple[int, int, list[int]]:
        rest = skeleton(plate[1:])
        return hash(plate), hash(rest), [hash(_gap(plate[0], rest, i)) for i in range(len(rest))]

    def _bulk(self, entries: list[VehicleEntry]) -> None:
        latest = {e.entry_id: e for e in entries}
        pk, pv, rk, rv, gk, gv = array("q"), array("i"), array("q"), array("i"), array("q"), array("i")
        for entry in latest.values():
            o = self.entries.add(entry.entry_id, entry)
            p, r, gaps = self._keys(entry.plate)
            pk.append(p)
            pv.append(o)
            rk.append(r)
            rv.append(o)
            gk.extend(gaps)
            gv.extend([o] * len(gaps))
        self.by_plate.build(pk, pv)
        self.by_rest.build(rk, rv)
        self.by_gap.build(gk, gv)

    def upsert(self, entry: VehicleEntry) -> None:
        self.remove(entry.entry_id)
        o = self.entries.add(entry.entry_id, entry)
        p, r, gaps = self._keys(entry.plate)
        self.by_plate.add(p, o)
        self.by_rest.add(r, o)
        for g in gaps:
            self.by_gap.add(g, o)

    def match(self, read: str, at: datetime | None = None) -> list[WatchlistMatch]:
        at = at or datetime.now(UTC)
        p = plates.normalize_plate(read)
        if not p:
            return []
        has_province = p[0] in PROVINCES
        rest = p[1:] if has_province else p
        rest_skel = skeleton(rest)
        found: dict[str, WatchlistMatch] = {}

        def offer(m: WatchlistMatch) -> None:
            if m.entry_id not in found or found[m.entry_id].score < m.score:
                found[m.entry_id] = m

        for entry in self.entries.alive(self.by_plate.get(hash(p)), lambda e: e.plate == p):
            offer(_match(entry, 1.0, "exact", "exact plate match", self.threshold))
        for entry in self.entries.alive(self.by_rest.get(hash(rest_skel)),
                                        lambda e: skeleton(e.plate[1:]) == rest_skel):
            if entry.entry_id in found:
                continue
            subs, ambiguous = _substitutions(entry.plate, rest, 1 if has_province else 0)
            if has_province and p[0] == entry.plate[0]:
                offer(_match(entry, 0.9 - 0.05 * ambiguous, "ocr-equivalent", "; ".join(subs), self.threshold))
            else:
                why = "province missing" if not has_province else f"province {p[0]}→{entry.plate[0]}"
                offer(_match(entry, 0.75 - 0.05 * len(subs), "partial", "; ".join([why, *subs]), self.threshold))
        for i in range(len(rest_skel) if has_province else 0):
            gap = _gap(p[0], rest_skel, i)
            for entry in self.entries.alive(self.by_gap.get(hash(gap)), lambda e, i=i, gap=gap:
                                            len(e.plate) - 1 == len(rest_skel) and
                                            _gap(e.plate[0], skeleton(e.plate[1:]), i) == gap):
                if entry.entry_id in found:
                    continue
                pos = i + 2
                offer(_match(entry, 0.5, "candidate", f"{rest[i]}→{entry.plate[i + 1]} at position {pos} "
                             "(not an OCR look-alike)", self.threshold))
        return sorted((m for m in found.values() if self.entries[m.entry_id].active(at)),
                      key=lambda m: (-m.score, m.priority, m.entry_id))


def _substitutions(listed: str, read_rest: str, offset: int) -> tuple[list[str], int]:
    """Explanations of each look-alike substitution, and how many of them the plate format would
    also allow as a real character at that position (so less sure to be an OCR error)."""
    fmt = plates.serial_format(listed[2:])
    allowed = (plates.LETTERS,) + (plates.FORMATS.get(fmt) or (plates.ALNUM,) * len(listed[2:]))
    subs, ambiguous = [], 0
    for i, (r, want) in enumerate(zip(read_rest, listed[1:], strict=True)):
        if r != want:
            subs.append(f"{r}→{want} at position {i + 1 + offset}")
            ambiguous += i < len(allowed) and r in allowed[i] and r not in "IO"
    return subs, ambiguous


# --------------------------------------------------------------------------- persons
def normalize_name(name: str) -> str:
    n = unicodedata.normalize("NFKC", name).strip().upper()
    return " ".join(n.replace("·", " ").replace("•", " ").split())


def pinyin_key(name: str) -> str:
    from pypinyin import lazy_pinyin

    return "".join(lazy_pinyin(normalize_name(name))).lower().replace(" ", "")


class PersonIndex(_Reclaiming):
    PARTS = ("by_id", "by_name", "by_pinyin")

    def __init__(self, entries: Iterable[PersonEntry] = (), threshold: float = ALERT_THRESHOLD,
                 index: type = HashIndex) -> None:
        self.threshold, self.index = threshold, index  # index: HashIndex, or DictIndex (the benchmark's baseline)
        self.reclaim_inline = True
        self._bulk(list(entries))

    def _bulk(self, entries: list[PersonEntry]) -> None:
        self.entries: EntryStore[PersonEntry] = EntryStore()
        self.by_id, self.by_name, self.by_pinyin = self.index(), self.index(), self.index()
        latest = {e.entry_id: e for e in entries}
        keys = {w: (array("q"), array("i")) for w in ("id", "name", "pinyin")}
        for entry in latest.values():
            o = self.entries.add(entry.entry_id, entry)
            for which, key in self._keys(entry):
                keys[which][0].append(key)
                keys[which][1].append(o)
        self.by_id.build(*keys["id"])
        self.by_name.build(*keys["name"])
        self.by_pinyin.build(*keys["pinyin"])

    def __len__(self) -> int:
        return len(self.entries)

    @staticmethod
    def _keys(e: PersonEntry) -> list[tuple[str, int]]:
        keys = []
        if e.id_number:
            keys.append(("id", hash(e.id_number)))
        if e.name:
            keys += [("name", hash(normalize_name(e.name))), ("pinyin", hash(pinyin_key(e.name)))]
        return keys

    def upsert(self, entry: PersonEntry) -> None:
        self.remove(entry.entry_id)
        o = self.entries.add(entry.entry_id, entry)
        indexes = {"id": self.by_id, "name": self.by_name, "pinyin": self.by_pinyin}
        for which, key in self._keys(entry):
            indexes[which].add(key, o)

    def match(self, id_number: str | None = None, name: str | None = None, birth_date: date | None = None,
              nationality: str | None = None, at: datetime | None = None) -> list[WatchlistMatch]:
        at = at or datetime.now(UTC)
        found: dict[str, WatchlistMatch] = {}

        def offer(entry: PersonEntry, score: float, kind: str, why: str) -> None:
            if entry.active(at) and (entry.entry_id not in found or found[entry.entry_id].score < score):
                found[entry.entry_id] = _match(entry, score, kind, why, self.threshold)

        if id_number:
            checked = check_id(id_number)
            number = checked.normalized if checked.valid else normalize_id(id_number)
            for e in self.entries.alive(self.by_id.get(hash(number)), lambda x: x.id_number == number):
                if e.id_type == "resident-id" or not e.nationality or not nationality:
                    offer(e, 1.0, "exact", "ID number matches exactly")
                elif e.nationality == nationality:
                    offer(e, 1.0, "exact", "passport number and nationality match")
                else:
                    offer(e, 0.5, "candidate", f"passport number matches, nationality {nationality}≠{e.nationality}")
        if name:
            key, pkey = normalize_name(name), pinyin_key(name)
            for e in self.entries.alive(self.by_name.get(hash(key)), lambda x: normalize_name(x.name or "") == key):
                self._by_name(e, birth_date, offer, 0.85, "name-dob", "same name")
            # pinyin keys are compared by their 64-bit hash (recomputing pinyin per candidate is slow)
            for e in self.entries.alive(self.by_pinyin.get(hash(pkey)), lambda x: x.name is not None):
                if normalize_name(e.name or "") != key:
                    self._by_name(e, birth_date, offer, 0.65, "pinyin", "same name by pinyin (homophone)")
        return sorted(found.values(), key=lambda m: (-m.score, m.priority, m.entry_id))

    @staticmethod
    def _by_name(e: PersonEntry, birth: date | None, offer, score: float, kind: str, why: str) -> None:
        if e.id_number:  # entries with an ID number are matched by it
            return
        if e.birth_date_from is None and e.birth_date_to is None:
            offer(e, 0.45, "candidate", f"{why}; the entry has no birth date to compare")
        elif birth is None:
            offer(e, 0.5, "candidate", f"{why}; no birth date given to compare")
        elif (e.birth_date_from or date.min) <= birth <= (e.birth_date_to or date.max):
            offer(e, score, kind, f"{why}, birth date within the entry's range")


# --------------------------------------------------------------------------- CSV import
VEHICLE_COLUMNS = ("entry_id", "plate", "category", "priority", "valid_from", "valid_until")
PERSON_COLUMNS = ("entry_id", "name", "id_number", "birth_date_from", "birth_date_to", "category", "priority",
                  "valid_from", "valid_until")


class WatchlistError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


def _when(text: str, end: bool = False) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    if len(text) == 10:
        d = date.fromisoformat(text)
        return datetime(d.year, d.month, d.day, tzinfo=UTC) if not end else \
            datetime.combine(d, datetime.max.time(), tzinfo=UTC)
    t = datetime.fromisoformat(text)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _rows(text: str, required: tuple[str, ...]) -> Iterable[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        raise WatchlistError(1, f"missing column(s): {', '.join(missing)}")
    for row in reader:
        if None in row or any(v is None for v in row.values()):
            raise WatchlistError(reader.line_num, "wrong number of fields")
        yield reader.line_num, {k: (v or "").strip() for k, v in row.items()}


def _common(row: dict[str, str], allowed: frozenset[Category]) -> dict:
    category = Category(row["category"])
    if category not in allowed:
        raise ValueError(f"category {category} does not belong in this list")
    out = {"entry_id": row["entry_id"], "category": category,
           "priority": int(row["priority"]) if row["priority"] else 3,
           "valid_from": _when(row["valid_from"]), "valid_until": _when(row["valid_until"], end=True),
           "note": row.get("note", "")}
    if row.get("version"):
        out["version"] = int(row["version"])
    return out


def parse_vehicles(text: str) -> list[VehicleEntry]:
    entries = []
    for line, row in _rows(text, VEHICLE_COLUMNS):
        try:
            checked = plates.check_plate(row["plate"])
            if not checked.valid:
                raise ValueError(f"plate: {checked.reason}")
            entries.append(msgspec.convert(_common(row, VEHICLE_CATEGORIES) | {"plate": checked.normalized},
                                           VehicleEntry))
        except (ValueError, msgspec.ValidationError) as exc:
            raise WatchlistError(line, str(exc)) from None
    return entries


def parse_persons(text: str) -> list[PersonEntry]:
    entries = []
    for line, row in _rows(text, PERSON_COLUMNS):
        try:
            id_type = row.get("id_type") or "resident-id"
            number = row["id_number"] or None
            if number and id_type == "resident-id":
                checked = check_id(number)
                if not checked.valid:
                    raise ValueError(f"id_number: {checked.reason}")  # the reason never repeats the number
                number = checked.normalized
            elif number:
                number = normalize_id(number)
            if not number and not row["name"]:
                raise ValueError("an entry needs a name or an id_number")
            fields = _common(row, PERSON_CATEGORIES) | {
                "name": row["name"] or None, "id_number": number, "id_type": id_type,
                "nationality": row.get("nationality") or None,
                "birth_date_from": date.fromisoformat(row["birth_date_from"]) if row["birth_date_from"] else None,
                "birth_date_to": date.fromisoformat(row["birth_date_to"]) if row["birth_date_to"] else None}
            entries.append(msgspec.convert(fields, PersonEntry))
        except (ValueError, msgspec.ValidationError) as exc:
            raise WatchlistError(line, str(exc)) from None
    return entries
