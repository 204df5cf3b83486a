"""Faust's monitor, fed every record only when asked (SAFECITY_WORKER__RECORD_STATS): it counts each
record, stream event and table access, a share of the worker's loop nobody reads unless the Faust
web's /stats is on. Rebalances are still timed as Faust times them (with no sensor answering, Faust
logs "Missing sensor state for rebalance" at every rebalance)."""

from __future__ import annotations

from faust.types import TP, Message

from models.settings import Settings
from processors.app import SafeCityApp, create_app


def app(record_stats: bool, tmp_path) -> SafeCityApp:
    """The worker's app with its sensors registered, as Faust does when it starts."""
    settings = Settings(worker={"record_stats": record_stats, "data_dir": str(tmp_path / str(record_stats))})
    out = create_app(settings, outputs={})
    out.on_init_dependencies()
    return out


def test_the_monitor_counts_records_only_when_asked(tmp_path):
    tp = TP("safecity.gas.readings.v1", 0)
    for record_stats, counted in ((False, 0), (True, 1)):
        a = app(record_stats, tmp_path)
        a.sensors.on_message_in(tp, 7, Message(tp.topic, tp.partition, 7, 0.0, 0, None, b"k", b"v", b"v"))
        assert a.monitor.messages_received_total == counted


def test_rebalances_are_timed_either_way(tmp_path):
    for record_stats in (False, True):
        a = app(record_stats, tmp_path)
        state = a.sensors.on_rebalance_start(a)
        assert state  # what Faust checks before warning of a missing sensor state
        a.sensors.on_rebalance_end(a, state)
        assert len(a.monitor.rebalance_end_latency) == 1


def test_each_partitions_last_event_time_is_kept_either_way(tmp_path):
    """Faust's consumer checks from it that every stream with a backlog moves; without it, it logs
    each such partition as a stream that never started processing."""
    tp = TP("safecity.gas.readings.v1", 2)
    for record_stats in (False, True):
        a = app(record_stats, tmp_path)
        assert tp not in a.monitor.stream_inbound_time
        a.sensors.on_stream_event_out(tp, 3, None, None, a.sensors.on_stream_event_in(tp, 3, _Stream(), None))
        assert tp in a.monitor.stream_inbound_time


class _Task:
    pass


class _Stream:
    """What Faust's own monitor reads of a stream: its name and the task that owns it."""

    def __init__(self) -> None:
        self.task_owner = _Task()

    def __str__(self) -> str:
        return "gas-readings"
