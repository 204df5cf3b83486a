"""Compact multi-maps for million-entry watch lists: int64 key hashes in a sorted numpy array
(built in bulk) plus a small dict overlay for live updates, merged back when it grows. Lookups are
a binary search (microseconds); memory is 12 bytes per key instead of a Python dict's ~100+.

Both maintenance steps are linear copies, never a re-sort of the whole index, because they run
between live lookups: merging the overlay sorts only the overlay and inserts it at its
``searchsorted`` positions; reclaiming removed entries filters the arrays through an ordinal remap
(sorted order survives a filter), instead of re-deriving every key from every live entry.

Both build new arrays and leave the index as it is, so an owner with live lookups to serve (the
worker's replica) can run them on a thread and swap the result in: a merge copies the whole base
(0.14 s at 12M keys, and a 1M-entry re-import merges about 150 times): inline, the worker's event
loop was busy for up to 1.8 s at a stretch during a re-import, most of it merging. With
``merge_inline`` off, ``add`` leaves the merging to the owner (``merge_due``, ``merged``, ``swap``)."""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

import numpy as np

E = TypeVar("E")
COMPACT_AT = 50_000
RECLAIM_MIN = 10_000


def _as_numpy(keys: array, vals: array) -> tuple[np.ndarray, np.ndarray]:
    """Views (no copy) of 'q' keys and 'i' ordinals."""
    return (np.frombuffer(keys, np.int64) if len(keys) else np.empty(0, np.int64),
            np.frombuffer(vals, np.int32) if len(vals) else np.empty(0, np.int32))


class HashIndex:
    def __init__(self) -> None:
        # sorted numpy arrays, kept as merged (no copy into Python arrays: at 14M keys that copy was
        # 0.09 s of each 0.17 s merge); a lookup is two calls of the array's own searchsorted, as fast
        # as bisect on an array('q') (2.0-3.0 us against 3.0-3.5 us at 14M keys)
        self.keys = np.empty(0, np.int64)
        self.vals = np.empty(0, np.int32)
        self._search = self.keys.searchsorted
        # the overlay, in insertion order: flat arrays (merged without a Python loop) and, for
        # lookups, key -> ordinal dicts of plain ints (no list per key, nothing for the cyclic GC
        # to walk: a list per key made adding the costliest line of a million-entry import)
        self.extra_keys = array("q")
        self.extra_vals = array("i")
        self.first: dict[int, int] = {}
        self.more: dict[int, list[int]] = {}  # keys added more than once since the last merge (rare)
        self.merge_inline = True  # off: the owner merges (merge_due, merged on a thread, swap)

    @property
    def size(self) -> int:
        return len(self.extra_keys)

    def build(self, keys: array, vals: array) -> None:
        """Bulk load from compact arrays ('q' keys, 'i' ordinals): no per-item Python objects."""
        keys_np, vals_np = _as_numpy(keys, vals)
        order = np.argsort(keys_np, kind="stable")
        self._store(keys_np[order], vals_np[order])
        self._clear_overlay()

    def add(self, key: int, ordinal: int) -> None:
        self.extra_keys.append(key)
        self.extra_vals.append(ordinal)
        known = self.first.get(key)
        if known is None:
            self.first[key] = ordinal
        else:
            self.more.setdefault(key, [known]).append(ordinal)
        if self.merge_inline and self.merge_due():
            self.compact()

    def merge_due(self) -> bool:
        """The overlay is big enough to merge into the sorted arrays."""
        return len(self.extra_keys) >= COMPACT_AT

    def compact(self) -> None:
        """Merge the overlay into the sorted arrays."""
        if self.extra_keys:
            self.swap(*self.merged(), at=self.merge_point())

    def merge_point(self) -> tuple[np.ndarray, int]:
        """What ``merged()`` merges now: the sorted arrays as they are, and the overlay's length."""
        return self.keys, len(self.extra_keys)

    def swap(self, keys: np.ndarray, vals: np.ndarray, at: tuple[np.ndarray, int]) -> bool:
        """Put in ``merged()``'s arrays, made at ``at`` (``merge_point()``); False, and nothing
        changed, if the index changed since (a key added would be lost with the overlay)."""
        if at[0] is not self.keys or at[1] != len(self.extra_keys):
            return False
        self._store(keys, vals)
        self._clear_overlay()
        return True

    def _clear_overlay(self) -> None:
        self.extra_keys, self.extra_vals = array("q"), array("i")
        self.first, self.more = {}, {}

    def merged(self) -> tuple[np.ndarray, np.ndarray]:
        """The sorted arrays with the overlay merged in (neither is changed, so lookups may go on
        meanwhile, but not adds: the overlay's buffer is in use, and growing it raises): sort the
        overlay alone and insert it after equal keys (a key's ordinals keep their insertion order),
        one linear copy of the base."""
        base_k, base_v = self.keys, self.vals
        if not self.extra_keys:
            return base_k, base_v
        extra_k = np.frombuffer(self.extra_keys, np.int64)
        extra_v = np.frombuffer(self.extra_vals, np.int32)
        order = np.argsort(extra_k, kind="stable")
        extra_k, extra_v = extra_k[order], extra_v[order]
        at = np.searchsorted(base_k, extra_k, side="right")
        return np.insert(base_k, at, extra_k), np.insert(base_v, at, extra_v)

    def retained(self, remap: np.ndarray) -> HashIndex:
        """A new index of the ordinals that ``remap`` maps to a new ordinal (>= 0), renumbered; this
        one is not changed (so it can be built on a thread while this one still answers lookups).
        How an index sheds removed entries without re-deriving a single key: sorted order survives
        a filter."""
        keys, vals = self.merged()
        new = remap[vals] if len(vals) else vals
        keep = new >= 0
        fresh = HashIndex()
        fresh._store(keys[keep], new[keep].astype(np.int32))
        return fresh

    def _store(self, keys: np.ndarray, vals: np.ndarray) -> None:
        self.keys, self.vals = np.ascontiguousarray(keys, np.int64), np.ascontiguousarray(vals, np.int32)
        self._search = self.keys.searchsorted

    def get(self, key: int) -> list[int]:
        lo, hi = int(self._search(key)), int(self._search(key, "right"))
        found = self.vals[lo:hi].tolist() if hi > lo else []
        more = self.more.get(key)
        if more is not None:
            return found + more
        one = self.first.get(key)
        return found if one is None else found + [one]


class DictIndex:
    """The plain alternative with HashIndex's interface: a Python dict of lists, key -> ordinals.
    Faster to build and to look up, several times the memory (the benchmarks' fair baseline)."""

    def __init__(self) -> None:
        self.map: dict[int, list[int]] = {}
        self.merge_inline = True  # nothing to merge, ever

    def merge_due(self) -> bool:
        return False

    def build(self, keys: array, vals: array) -> None:
        self.map = {}
        for k, v in zip(keys, vals, strict=True):
            self.add(k, v)

    def add(self, key: int, ordinal: int) -> None:
        found = self.map.get(key)
        if found is None:
            self.map[key] = [ordinal]
        else:
            found.append(ordinal)

    def compact(self) -> None:
        pass

    def retained(self, remap: np.ndarray) -> DictIndex:
        table = remap.tolist()
        fresh = DictIndex()
        for key, ordinals in self.map.items():
            new = [table[o] for o in ordinals if table[o] >= 0]
            if new:
                fresh.map[key] = new
        return fresh

    def get(self, key: int) -> list[int]:
        return self.map.get(key, [])


class EntryStore(Generic[E]):
    """Entries by ordinal (the index values) and by id; a removed entry leaves a hole, and
    lookups verify that an ordinal is still alive and still means what the key said."""

    def __init__(self) -> None:
        self.by_ordinal: list[E | None] = []
        self.ordinal_of: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.ordinal_of)

    @property
    def holes(self) -> int:
        """Removed (or replaced) entries whose slots and index keys are not reclaimed yet."""
        return len(self.by_ordinal) - len(self.ordinal_of)

    def needs_reclaim(self) -> bool:
        """Rebuild once the dead outnumber the living (and there are enough to matter): memory stays
        within twice the live size, and the rebuild's cost is spread over as many removals."""
        return self.holes > max(RECLAIM_MIN, len(self.ordinal_of))

    def reclaimed(self) -> tuple[EntryStore[E], np.ndarray]:
        """A new store without the holes (this one is not changed), and old ordinal -> new ordinal
        (-1 for a removed one; the live keep their relative order) for ``HashIndex.retained``."""
        alive = np.fromiter((e is not None for e in self.by_ordinal), bool, len(self.by_ordinal))
        remap = np.where(alive, np.cumsum(alive) - 1, -1).astype(np.int64)
        fresh: EntryStore[E] = EntryStore()
        fresh.by_ordinal = [e for e in self.by_ordinal if e is not None]
        table = remap.tolist()
        fresh.ordinal_of = {entry_id: table[o] for entry_id, o in self.ordinal_of.items()}
        return fresh, remap

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self.ordinal_of

    def __getitem__(self, entry_id: str) -> E:
        return self.by_ordinal[self.ordinal_of[entry_id]]  # type: ignore[return-value]

    def __iter__(self) -> Iterator[str]:
        return iter(self.ordinal_of)

    def add(self, entry_id: str, entry: E) -> int:
        ordinal = len(self.by_ordinal)
        self.by_ordinal.append(entry)
        self.ordinal_of[entry_id] = ordinal
        return ordinal

    def pop(self, entry_id: str) -> E | None:
        ordinal = self.ordinal_of.pop(entry_id, None)
        if ordinal is None:
            return None
        entry, self.by_ordinal[ordinal] = self.by_ordinal[ordinal], None
        return entry

    def alive(self, ordinals: list[int], check: Callable[[E], bool]) -> list[E]:
        out = []
        for o in ordinals:
            e = self.by_ordinal[o]
            if e is not None and check(e):
                out.append(e)
        return out
