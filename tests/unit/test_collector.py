"""Full garbage collections wait for the process's timer; the young ones go on, and the timer's
collection still reclaims cyclic garbage that reached the oldest generation."""

from __future__ import annotations

import gc
import weakref

import pytest

from safecity import collector


@pytest.fixture
def generations_seen():
    thresholds = gc.get_threshold()
    seen: list[int] = []

    def note(phase: str, info: dict) -> None:
        if phase == "start":
            seen.append(info["generation"])

    gc.collect()
    gc.callbacks.append(note)
    try:
        yield seen
    finally:
        gc.callbacks.remove(note)
        gc.set_threshold(*thresholds)


class Node:
    def __init__(self) -> None:
        self.peer: Node | None = None


def churn(n: int) -> list[list[int]]:
    """Allocate like a busy worker: long-lived objects that outlive the young collections."""
    kept = []
    for i in range(n):
        kept.append([i])
        if len(kept) > 50_000:
            kept = kept[25_000:]
    return kept


def test_by_default_the_collector_runs_full_collections_on_its_own(generations_seen):
    churn(400_000)
    assert 2 in generations_seen  # what the worker did every few seconds


def test_deferred_full_collections_wait_for_the_timer_and_then_reclaim_cycles(generations_seen):
    collector.defer_full_collections()
    a, b = Node(), Node()
    a.peer, b.peer = b, a  # a cycle: only the cyclic collector can reclaim it
    gone = weakref.ref(a)
    gc.collect(1)  # into the oldest generation, where only a full collection looks
    del a, b
    generations_seen.clear()
    churn(400_000)
    assert 0 in generations_seen and 2 not in generations_seen  # young collections only
    assert gone() is not None  # the cycle waits for the full collection
    found, took = collector.full_collection()
    assert gone() is None and found >= 2 and took >= 0


def test_what_lives_when_setup_is_done_is_out_of_later_collections() -> None:
    kept = [Node() for _ in range(1000)]
    garbage = Node()
    garbage.peer = garbage  # a cycle: only a collection frees it
    gone = weakref.ref(garbage)
    del garbage
    try:
        collector.setup_done()
        assert gone() is None  # collected first, not frozen with the rest
        walked = {id(o) for o in gc.get_objects()}  # what collections walk (the frozen are not)
        assert not any(id(node) in walked for node in kept)
        assert gc.get_freeze_count() >= len(kept)
    finally:
        gc.unfreeze()
