"""The worker's inline hand-off of fetched records (processors/faust_fixes.py, "Four tasks per
record"): a hand-off that does not wait runs at once, with no task; one that waits continues, where
it stopped, in the task Faust races against a rebalance, with results, errors and cancellation
passed through as if the task had run it from the start."""

from __future__ import annotations

import asyncio
import logging

import pytest

from processors import faust_fixes
from processors.faust_fixes import Resumed, step_inline


def test_a_hand_off_that_does_not_wait_runs_at_once() -> None:
    delivered: list[str] = []

    async def hand_off(record: str) -> None:
        delivered.append(record)

    async def main() -> None:
        tasks = len(asyncio.all_tasks())
        assert step_inline(hand_off("r1")) is None
        assert delivered == ["r1"]  # before the loop turned once
        assert len(asyncio.all_tasks()) == tasks

    asyncio.run(main())


def test_an_error_in_a_hand_off_is_raised() -> None:
    async def hand_off() -> None:
        raise ValueError("undecodable")

    with pytest.raises(ValueError, match="undecodable"):
        step_inline(hand_off())


def test_a_hand_off_that_waits_continues_in_a_task_with_what_it_waited_for() -> None:
    steps: list[str] = []

    async def hand_off(room: asyncio.Future) -> str:
        steps.append("before")
        got = await room  # a full buffer
        steps.append(f"got {got}")
        await asyncio.sleep(0)  # a bare yield
        steps.append("after")
        return "delivered"

    async def main() -> None:
        room = asyncio.get_running_loop().create_future()
        rest = step_inline(hand_off(room))
        assert isinstance(rest, Resumed) and steps == ["before"]
        task = asyncio.ensure_future(rest)
        await asyncio.sleep(0)
        assert not task.done()
        room.set_result("space")
        assert await task == "delivered"
        assert steps == ["before", "got space", "after"]

    asyncio.run(main())


def test_a_waiting_hand_off_abandoned_in_a_rebalance_is_cancelled_inside() -> None:
    """What Faust's race does when flow is suspended first: the hand-off's task is cancelled, and the
    hand-off sees the cancellation where it waited (its cleanup runs), as when Faust ran it."""
    seen: list[str] = []

    async def hand_off(room: asyncio.Future) -> None:
        try:
            await room
            seen.append("delivered")
        except asyncio.CancelledError:
            seen.append("cancelled while waiting")
            raise

    async def main() -> None:
        room = asyncio.get_running_loop().create_future()
        suspend_flow = asyncio.Event()
        rest = step_inline(hand_off(room))
        assert rest is not None
        racing = [asyncio.ensure_future(rest), asyncio.ensure_future(suspend_flow.wait())]
        suspend_flow.set()
        done, pending = await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
        assert racing[1] in done and racing[0] in pending
        racing[0].cancel()
        with pytest.raises(asyncio.CancelledError):
            await racing[0]
        assert seen == ["cancelled while waiting"]
        assert room.cancelled()  # what it waited on was cancelled with it, as under a plain task

    asyncio.run(main())


def test_an_error_after_the_wait_reaches_the_task() -> None:
    async def hand_off(room: asyncio.Future) -> None:
        await room
        raise KeyError("gone")

    async def main() -> None:
        room = asyncio.get_running_loop().create_future()
        rest = step_inline(hand_off(room))
        task = asyncio.ensure_future(rest)
        room.set_result(None)
        with pytest.raises(KeyError):
            await task

    asyncio.run(main())


def test_the_setting_chooses_the_fetch_loop() -> None:
    from faust.transport.consumer import Consumer

    try:
        faust_fixes.apply(50, inline_delivery=False)
        assert Consumer._drain_messages is Consumer.faust_drain_messages
        faust_fixes.apply(50, inline_delivery=True)
        assert Consumer._drain_messages is faust_fixes._drain_messages
    finally:
        faust_fixes.apply(50)


def test_with_another_faust_release_its_own_methods_run_not_the_copies(caplog: pytest.LogCaptureFixture) -> None:
    from faust.stores import rocksdb
    from faust.tables.recovery import Recovery
    from faust.transport.consumer import Consumer

    try:
        with caplog.at_level(logging.WARNING, logger=faust_fixes.__name__):
            faust_fixes.apply(50, inline_delivery=True, faust_version="0.16.0")
        assert Consumer._drain_messages is Consumer.faust_drain_messages
        assert rocksdb.Store.revoke_partitions is rocksdb.Store.faust_revoke_partitions
        assert Recovery.on_recovery_completed is Recovery.faust_on_recovery_completed
        assert Recovery._resume_streams is Recovery.faust_resume_streams
        assert "faust-streaming 0.16.0" in caplog.text and "Faust's own" in caplog.text
        faust_fixes.apply(50, faust_version="0.15.9")
        assert Consumer._drain_messages is faust_fixes._drain_messages
        assert rocksdb.Store.revoke_partitions is faust_fixes.revoke_partitions
        assert Recovery.on_recovery_completed is faust_fixes.on_recovery_completed
        assert Recovery._resume_streams is faust_fixes._resume_streams
    finally:
        faust_fixes.apply(50)
    assert faust_fixes.copies_fit(__import__("faust").__version__)  # the release installed is the one copied


def test_faust_producer_buffer_waits_are_counted_not_logged_each(caplog: pytest.LogCaptureFixture) -> None:
    faust_fixes.apply(50)
    log = logging.getLogger("faust.transport.producer")
    faust_fixes.PRODUCER_WAITS.take()
    with caplog.at_level(logging.INFO, logger="faust.transport.producer"):
        log.warning("producer buffer full size 104")
        log.info("producer flush took 0.013")
        log.warning("producer buffer full size 111")
        log.warning("producer buffer full size many")  # counted, whatever Faust writes after it
        log.warning("producer stopped")  # anything else goes through
    assert [r.getMessage() for r in caplog.records] == ["producer stopped"]
    assert faust_fixes.PRODUCER_WAITS.take() == (3, 111)
    assert faust_fixes.PRODUCER_WAITS.take() == (0, 0)
