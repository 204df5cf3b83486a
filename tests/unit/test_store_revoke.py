"""A rebalance's revoked table partitions (processors/faust_fixes.py, "A full garbage collection per
table"): the store drops its database and releases it at once, without a full collection."""

from __future__ import annotations

import gc

import faust
from faust.types import TP

from processors import faust_fixes


def test_a_revoked_partition_is_released_at_once_without_a_full_collection(tmp_path) -> None:
    faust_fixes.apply(10)
    app = faust.App("revoke-test", store="rocksdb://", datadir=str(tmp_path), topic_partitions=2)
    table = app.Table("t", partitions=2)
    store = table.data
    store._db_for_partition(0)[b"k"] = b"v"
    store._db_for_partition(1)[b"k"] = b"w"
    full: list[int] = []

    def note(phase: str, info: dict) -> None:
        if phase == "start" and info["generation"] == 2:
            full.append(1)

    gc.callbacks.append(note)
    try:
        store.revoke_partitions(table, {TP(table.changelog_topic.get_topic_name(), 0)})
    finally:
        gc.callbacks.remove(note)
    assert not full
    assert list(store._dbs) == [1]  # the other partition stays open
    again = store.rocksdb_options.open(store.partition_path(0))  # RocksDB refuses a database still open
    assert again[b"k"] == b"v"
    again.close()
