"""The batch acknowledgement of processors/changelog.py: the persisted offset it writes, and a failed
batch stopping the next commit (the Kafka side is tests/integration/test_changelog.py)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.structs import RecordMetadata
from faust.exceptions import ProducerSendError
from faust.types import TP

from processors.changelog import ChangelogBatches


class Store:
    def __init__(self) -> None:
        self.persisted: dict[TP, int] = {}

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        self.persisted[tp] = offset


class Table:
    def __init__(self) -> None:
        self.data = Store()


def _done(result=None, exc: BaseException | None = None) -> asyncio.Future:
    loop = asyncio.new_event_loop()
    try:
        future = loop.create_future()
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)
        return future
    finally:
        loop.close()


def test_an_acknowledged_batch_persists_the_offset_of_its_last_record():
    batches, table, tp = ChangelogBatches(app=None), Table(), TP("t-changelog", 3)
    batches._on_sent(table, tp, 25, _done(RecordMetadata("t-changelog", 3, tp, 100, 0, 1, 0)))
    assert table.data.persisted == {tp: 124}  # records 100..124
    batches.raise_failed()  # nothing failed: no error


def test_a_failed_batch_makes_every_later_flush_raise_and_persists_nothing():
    batches, table, tp = ChangelogBatches(app=None), Table(), TP("t-changelog", 0)
    batches._on_sent(table, tp, 10, _done(exc=RuntimeError("broker gone")))
    assert table.data.persisted == {}
    with pytest.raises(ProducerSendError, match="broker gone"):
        batches.raise_failed()
    with pytest.raises(ProducerSendError):  # still: those events' offsets must never be committed
        asyncio.run(batches.flush())
    # a later success does not clear it either
    batches._on_sent(table, tp, 1, _done(RecordMetadata("t-changelog", 0, tp, 7, 0, 1, 0)))
    with pytest.raises(ProducerSendError):
        batches.raise_failed()
