"""Metric points carry device ids and numbers, never names, ID numbers or plate texts."""

from models import schemas
from models.topics import MessageKind
from processors.rules import metrics
from tests import factories as f


def all_values(points):
    for p in points:
        yield p.measurement
        yield from p.tags.values()
        yield from (str(v) for v in p.fields.values())


def test_registration_metrics_hold_no_personal_data():
    data = f.registration(ingested_at=f.iso(f.at(90)))
    reg = schemas.decode_event(MessageKind.REGISTRATION, f.payload(data))
    points = metrics.registration_points(reg)
    assert points[0].fields["upload_delay_s"] == 90.0 and points[0].tags["hotel_id"] == "hotel-001"
    flat = " ".join(all_values(points))
    for secret in (data["guest_name"], data["id_number"], data["birth_date"], data["room"]):
        assert secret not in flat


def test_plate_metrics_hold_no_plate_text():
    read = schemas.decode_event(MessageKind.PLATE_READ, f.payload(f.plate_read(ingested_at=f.iso(f.at(0.25)))))
    points = metrics.plate_read_points(read)
    assert points[0].fields["ingest_latency_s"] == 0.25
    assert "京A12345" not in " ".join(all_values(points)) and "12345" not in " ".join(all_values(points))


def test_gas_metrics_skip_missing_values():
    reading = schemas.decode_event(MessageKind.GAS_READING, f.payload(f.gas_reading(value=None)))
    (point,) = metrics.gas_points(reading)
    assert "value" not in point.fields and point.fields["battery"] == 88.0
