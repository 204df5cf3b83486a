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


def test_points_carry_their_devices_place():
    from datetime import UTC, datetime

    from processors.rules.metrics import MetricPoint, with_place

    places = {"gas-1": {"district": "xuhui", "site": "bldg-4"}, "cp-1": {"district": "pudong", "grid": "G-12"}}
    t = datetime(2026, 11, 30, tzinfo=UTC)
    points = [MetricPoint("gas", {"sensor_id": "gas-1", "gas": "co"}, {"value": 1.0}, t),
              MetricPoint("plate_reads", {"checkpoint_id": "cp-1", "camera_id": "cp-1-L1"}, {"count": 1}, t),
              MetricPoint("camera_health", {"camera_id": "cp-1-L1", "district": "jingan"}, {"healthy": 1}, t),
              MetricPoint("dead_letters", {"reason": "not-json"}, {"count": 1}, t),
              MetricPoint("gas", {"sensor_id": "unknown"}, {"value": 1.0}, t)]
    out = with_place(points, places.get)
    assert out[0].tags == {"sensor_id": "gas-1", "gas": "co", "district": "xuhui", "site": "bldg-4"}
    assert out[1].tags["district"] == "pudong" and out[1].tags["grid"] == "G-12"
    assert out[2].tags["district"] == "jingan"  # its own tag wins
    assert out[3:] == points[3:]


def test_a_status_point_carries_the_registry_coordinates_for_the_map():
    from datetime import UTC, datetime

    from models.schemas import DeviceState, DeviceStatus

    at = datetime(2026, 11, 30, tzinfo=UTC)
    online = DeviceStatus(device_id="gas-1", state=DeviceState.ONLINE, at=at)
    (p,) = metrics.status_points(online, "gas", 31.2, 121.5)
    assert (p.tags, p.fields) == ({"device_id": "gas-1", "kind": "gas"}, {"online": 1, "lat": 31.2, "lon": 121.5})
    (p,) = metrics.status_points(DeviceStatus(device_id="gas-1", state=DeviceState.OFFLINE, at=at), "gas")
    assert p.fields == {"online": 0}  # not placed in the registry: no coordinates
    assert metrics.status_points(DeviceStatus(device_id="gas-1", state=DeviceState.OFFLINE)) == []
