"""The deadline index behind silence checks: due keys out in order, never early, at most one step late."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.rules.deadlines import Deadlines

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_keys_come_out_once_when_due_in_deadline_order():
    d = Deadlines()
    d.set("b", T0 + timedelta(seconds=20))
    d.set("a", T0 + timedelta(seconds=10))
    d.set("c", T0 + timedelta(seconds=30))
    assert d.due(T0 + timedelta(seconds=5)) == []
    assert d.due(T0 + timedelta(seconds=25)) == ["a", "b"]
    assert d.due(T0 + timedelta(seconds=25)) == []  # taken: no longer has a deadline
    assert len(d) == 1 and "c" in d


def test_moving_or_removing_a_deadline_replaces_the_old_one():
    d = Deadlines()
    d.set("s", T0 + timedelta(seconds=10))
    d.set("s", T0 + timedelta(seconds=100))  # a new reading moved it
    assert d.due(T0 + timedelta(seconds=50)) == []
    d.set("s", None)  # offline already: no deadline
    assert d.due(T0 + timedelta(days=1)) == [] and len(d) == 0


def test_a_deadline_in_the_past_is_due_at_once_and_a_reused_slot_works():
    d = Deadlines()
    d.set("x", T0)
    assert d.due(T0 + timedelta(seconds=1)) == ["x"]
    d.set("y", T0)  # the same slot again, after it was taken
    assert d.due(T0 + timedelta(seconds=1)) == ["y"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.one_of(st.none(), st.floats(0, 600))), max_size=200),
       st.lists(st.floats(0, 700), min_size=1, max_size=10))
def test_against_a_plain_dict_of_due_times(changes, checks):
    """Whatever the changes, a check returns exactly the keys a plain dict says are due (allowing the
    one-second resolution: never before the due time, at most a second after)."""
    d, truth = Deadlines(), {}
    for key, offset in changes:
        due = None if offset is None else T0 + timedelta(seconds=offset)
        d.set(f"k{key}", due)
        if due is None:
            truth.pop(f"k{key}", None)
        else:
            truth[f"k{key}"] = due
    for c in sorted(checks):
        now = T0 + timedelta(seconds=c)
        got = d.due(now)
        assert all(truth[k] <= now for k in got)  # never early
        assert not [k for k, due in truth.items() if due <= now - timedelta(seconds=1) and k not in got]
        for k in got:
            del truth[k]
    assert len(d) == len(truth)


def test_cost_does_not_grow_with_idle_keys():
    """20,000 keys, none due: a check looks at no key (its work is the due ones, not the idle ones)."""
    d = Deadlines()
    rng = random.Random(1)
    for i in range(20_000):
        d.set(f"s{i}", T0 + timedelta(seconds=600 + rng.random() * 60))
    assert d.due(T0 + timedelta(seconds=300)) == []
    assert len(d._order) <= 61  # one bucket per second of spread, not one per key
