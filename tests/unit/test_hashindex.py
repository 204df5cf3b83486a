"""The compact index against a plain model of the same multi-map, through every maintenance step a
replica performs: overlay adds, merges (compact) and reclaims (retained)."""

from __future__ import annotations

from array import array

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.rules import hashindex
from processors.rules.hashindex import DictIndex, EntryStore, HashIndex

KEYS = st.integers(-5, 5) | st.integers(-2**63, 2**63 - 1)  # few keys (many repeats) and any int64
OPS = st.lists(st.one_of(st.tuples(st.just("add"), KEYS), st.just(("compact",)), st.just(("reclaim",)),
                         st.tuples(st.just("owner"), st.lists(KEYS, max_size=3))), max_size=80)


@settings(max_examples=300, deadline=None)
@given(st.lists(KEYS, max_size=30), OPS, st.integers(1, 7), st.booleans())
def test_the_compact_index_answers_like_a_plain_multimap(built, ops, compact_at, inline):
    hashindex_compact_at = hashindex.COMPACT_AT
    hashindex.COMPACT_AT = compact_at  # merges happen mid-sequence too
    try:
        index, model = HashIndex(), DictIndex()
        index.merge_inline = inline  # off: only the owner's merges ("owner") and compact() merge
        index.build(array("q", built), array("i", range(len(built))))
        model.build(array("q", built), array("i", range(len(built))))
        ordinals, overlay = len(built), 0
        keys = set(built) | {o[1] for o in ops if o[0] == "add"} | {k for o in ops if o[0] == "owner" for k in o[1]}
        for op in ops:
            if op[0] == "add":
                index.add(op[1], ordinals)
                model.add(op[1], ordinals)
                ordinals, overlay = ordinals + 1, overlay + 1
                assert inline or index.size == overlay  # nothing merged behind the owner's back
            elif op[0] == "owner":  # merged as a replica does on a thread; keys added before the swap
                merged, at = index.merged(), index.merge_point()
                for key in op[1]:
                    index.add(key, ordinals)
                    model.add(key, ordinals)
                    ordinals, overlay = ordinals + 1, overlay + 1
                swapped = index.swap(*merged, at=at)
                assert swapped == (not op[1])  # taken unless keys came in meanwhile (they would be lost)
                overlay = 0 if swapped else overlay
            elif op[0] == "compact":
                index.compact()
                overlay = 0
            else:  # drop every third ordinal, renumber the rest in order
                remap = np.array([-1 if o % 3 == 0 else o - o // 3 - 1 for o in range(ordinals)], np.int64)
                before = {k: index.get(k) for k in keys}
                fresh = index.retained(remap)
                # the old index is untouched (a replica builds the new one on a thread meanwhile)
                assert {k: index.get(k) for k in before} == before
                index, model = fresh, model.retained(remap)
                index.merge_inline = inline
                ordinals -= (ordinals + 2) // 3
                overlay = 0
        for key in keys:
            assert index.get(key) == model.get(key), key  # same ordinals, in insertion order
        assert list(index.keys) == sorted(index.keys)
    finally:
        hashindex.COMPACT_AT = hashindex_compact_at


def test_a_reclaimed_store_keeps_the_live_entries_in_order_and_leaves_the_old_one_alone():
    store: EntryStore[str] = EntryStore()
    for n in range(10):
        store.add(f"e{n}", f"entry {n}")
    for n in (0, 3, 4, 9):
        store.pop(f"e{n}")
    fresh, remap = store.reclaimed()
    assert remap.tolist() == [-1, 0, 1, -1, -1, 2, 3, 4, 5, -1]
    assert [fresh[i] for i in fresh] == [f"entry {n}" for n in (1, 2, 5, 6, 7, 8)]
    assert fresh.holes == 0 and store.holes == 4 and store["e5"] == "entry 5"
