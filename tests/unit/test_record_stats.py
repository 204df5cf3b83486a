"""Faust's monitor, fed every record only when asked (SAFECITY_WORKER__RECORD_STATS): it counts each
record, stream event and table access, a share of the worker's loop nobody reads unless the Faust
web's /stats is on."""

from __future__ import annotations

from faust.types import TP, Message

from models.settings import Settings
from processors.app import create_app


def delivered(record_stats: bool, tmp_path) -> int:
    """Build the worker's app, start its dependencies as Faust does, hand its sensors one record:
    how many records its monitor has counted."""
    settings = Settings(worker={"record_stats": record_stats, "data_dir": str(tmp_path / str(record_stats))})
    app = create_app(settings, outputs={})
    app.on_init_dependencies()
    tp = TP("safecity.gas.readings.v1", 0)
    app.sensors.on_message_in(tp, 7, Message(tp.topic, tp.partition, 7, 0.0, 0, None, b"k", b"v", b"v"))
    return app.monitor.messages_received_total


def test_the_monitor_counts_records_only_when_asked(tmp_path):
    assert delivered(False, tmp_path) == 0
    assert delivered(True, tmp_path) == 1
