"""The metrics writer's line-protocol encoder writes exactly what influxdb-client's Point writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st
from influxdb_client import Point, WritePrecision

from processors.metrics_writer import line
from processors.rules import metrics
from processors.sinks.metrics_topic import encode

text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
values = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1),
                   st.floats(allow_nan=True, allow_infinity=True), text)
times = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC))


def reference(point: dict) -> str:
    """What influxdb-client's write API makes of a dict record (its serializer calls this)."""
    return Point.from_dict(point, write_precision=WritePrecision.NS).to_line_protocol()


@settings(max_examples=300, deadline=None)
@given(measurement=text.filter(lambda m: m and not m.startswith("#")),
       tags=st.dictionaries(text, st.one_of(st.none(), text), max_size=4),
       fields=st.dictionaries(text.filter(bool), values, max_size=4), at=times)
def test_same_line_as_influxdb_client(measurement, tags, fields, at):
    # as the writer gets it: a JSON record decoded (times are RFC 3339 strings then)
    point = msgspec.json.decode(msgspec.json.encode({"measurement": measurement, "tags": tags, "fields": fields,
                                                     "time": at}))
    assert line(point) == reference(point)


def test_the_pipelines_own_points_unchanged():
    at = datetime(2026, 11, 29, 12, 0, 0, 123456, tzinfo=UTC)
    points = [metrics.MetricPoint("gas", {"sensor_id": "gas-001", "district": "xu hui", "gas": "combustible"},
                                  {"value": 2.5, "battery": 90.0, "seq": 7}, at),
              metrics.MetricPoint("alerts", {"type": "gas-level-1", "state": "firing", "device_id": "g=1,x"},
                                  {"count": 1, "firing": 1}, at + timedelta(seconds=1))]
    for point in msgspec.json.decode(encode(points)):
        assert line(point) == reference(point)
    assert line(msgspec.json.decode(encode(points))[0]).endswith(f" {int(at.replace(microsecond=0).timestamp())}123456000")
