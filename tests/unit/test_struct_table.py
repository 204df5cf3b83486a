"""The worker's struct tables: a cached table answers from memory, and forgets everything when
partitions move (recovery writes to the store behind its back)."""

from __future__ import annotations

import asyncio

import faust
import msgspec

from processors.context import StructTable


class State(msgspec.Struct):
    n: int = 0


def table(cached: bool) -> tuple[dict, StructTable[State], faust.App]:
    app = faust.App("struct-table-test")
    store: dict = {}
    return store, StructTable(store, State, app, cached=cached), app  # a dict stands in for the Faust table


def test_a_cached_table_reads_its_own_writes_from_memory_and_stores_them_all_the_same():
    store, t, _ = table(cached=True)
    t.set("a", State(1))
    assert msgspec.json.decode(store[b"a"], type=State) == State(1)  # the store (and changelog) has it
    store[b"a"] = msgspec.json.encode(State(99))  # written behind the cache's back
    assert t.get("a") == State(1)
    assert t.get("missing") == State() and "missing" not in t.cache  # a default is not remembered


def test_the_cache_is_dropped_when_partitions_are_revoked_and_when_a_rebalance_completes():
    for signal in ("on_partitions_revoked", "on_rebalance_complete"):
        store, t, app = table(cached=True)
        t.set("a", State(1))
        store[b"a"] = msgspec.json.encode(State(2))  # recovery wrote a newer state
        asyncio.run(getattr(app, signal).send(set()) if signal == "on_partitions_revoked"
                    else getattr(app, signal).send())
        assert t.get("a") == State(2), signal


def test_an_uncached_table_always_reads_the_store():
    store, t, _ = table(cached=False)
    t.set("a", State(1))
    store[b"a"] = msgspec.json.encode(State(3))
    assert t.get("a") == State(3)


def test_the_cache_is_bounded(monkeypatch):
    store, t, _ = table(cached=True)
    monkeypatch.setattr(StructTable, "CACHE_MAX", 3)
    for i in range(10):
        t.set(f"k{i}", State(i))
    assert len(t.cache) <= 3 and len(store) == 10
    assert [t.get(f"k{i}").n for i in range(10)] == list(range(10))
