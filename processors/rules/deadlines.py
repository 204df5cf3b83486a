"""Deadlines by key: what is due now costs nothing per idle key.

The silence checks ("no reading for three intervals") used to decode every sensor's state every few
seconds, linear in sensors. Here each key has at most one due time, kept in a bucket per whole second
(a hashed timer wheel keyed by epoch second): setting or moving a deadline is O(1), taking what is
due is O(due), and memory is one entry per key with a deadline. Keys come out at most one
resolution step late, never early.
"""

from __future__ import annotations

import heapq
import math
from datetime import datetime


class Deadlines:
    def __init__(self, resolution_s: float = 1.0) -> None:
        self.resolution_s = resolution_s
        self._slot_of: dict[str, int] = {}  # key -> its slot
        self._slots: dict[int, set[str]] = {}  # slot -> keys due in it
        self._order: list[int] = []  # heap of the slots that have a bucket

    def _slot(self, at: datetime) -> int:
        # the end of the step the time falls in: by then the key is surely due
        return math.ceil(at.timestamp() / self.resolution_s)

    def set(self, key: str, due: datetime | None) -> None:
        """Give ``key`` the due time ``due`` (None: no deadline), replacing any earlier one."""
        old = self._slot_of.pop(key, None)
        if old is not None:
            self._slots[old].discard(key)  # an emptied bucket stays until its slot comes round
        if due is None:
            return
        slot = self._slot(due)
        bucket = self._slots.get(slot)
        if bucket is None:
            bucket = self._slots[slot] = set()
            heapq.heappush(self._order, slot)
        bucket.add(key)
        self._slot_of[key] = slot

    def due(self, now: datetime) -> list[str]:
        """Take every key whose deadline has passed by ``now`` (in deadline order); they no longer
        have one."""
        out: list[str] = []
        limit = now.timestamp() / self.resolution_s
        while self._order and self._order[0] <= limit:
            slot = heapq.heappop(self._order)
            keys = self._slots.pop(slot)
            for key in sorted(keys):
                del self._slot_of[key]
            out += sorted(keys)
        return out

    def clear(self) -> None:
        self._slot_of.clear()
        self._slots.clear()
        self._order.clear()

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, key: str) -> bool:
        return key in self._slot_of
