import json
from datetime import timedelta

import msgspec
import pytest

from ingest.validate import MAX_PAYLOAD_BYTES, Accepted, Rejected, UrgentDevices, Urgency, validate
from models import schemas, topics
from models.topics import MessageKind
from tests import factories as f

NOW = f.T0 + timedelta(seconds=2)


def test_valid_reading_is_keyed_by_device_and_stamped_with_ingest_time():
    result = validate("safecity/v1/gas/gas-001/reading", f.payload(f.gas_reading()), NOW)
    assert isinstance(result, Accepted)
    assert result.kafka_topic == topics.KAFKA_TOPICS[MessageKind.GAS_READING]
    assert result.key == b"gas-001"
    event = schemas.decode_event(MessageKind.GAS_READING, result.value)
    assert event.ingested_at == NOW and event.value == 3.5


@pytest.mark.parametrize(("reading", "urgent"), [
    ({"value": 3.5}, False),
    ({"value": 9.99}, False),
    ({"value": 10.0}, True),  # at the bound
    ({"value": 31.0}, True),
    ({"value": None}, False),  # a fault is maintenance, never urgent
    ({"gas": "co", "unit": "ppm", "value": 29.0}, False),
    ({"gas": "co", "unit": "ppm", "value": 30.0}, True),
])
def test_a_reading_at_an_alarming_level_goes_to_the_urgent_topic_unpacked_and_keyed_the_same(reading, urgent):
    result = validate("safecity/v1/gas/gas-001/reading", f.payload(f.gas_reading(**reading)), NOW,
                      urgent=Urgency(lel=10.0, co_ppm=30.0))
    assert isinstance(result, Accepted) and result.key == b"gas-001"
    want = topics.KAFKA_URGENT if urgent else topics.KAFKA_TOPICS
    assert result.kafka_topic == want[MessageKind.GAS_READING] and result.urgent is urgent
    assert schemas.decode_event(MessageKind.GAS_READING, result.value).sensor_id == "gas-001"


def test_urgency_can_be_turned_off_per_gas_and_is_not_asked_without_it():
    nan = schemas.decode_event(MessageKind.GAS_READING, f.payload(f.gas_reading()))
    assert not Urgency()(msgspec.structs.replace(nan, value=float("nan")))  # a fault: never urgent
    high = f.payload(f.gas_reading(value=60.0))
    assert validate("safecity/v1/gas/gas-001/reading", high, NOW).kafka_topic == topics.KAFKA_TOPICS[
        MessageKind.GAS_READING]
    assert validate("safecity/v1/gas/gas-001/reading", high, NOW, urgent=Urgency(lel=0.0)).kafka_topic == \
        topics.KAFKA_TOPICS[MessageKind.GAS_READING]
    co = f.payload(f.gas_reading(gas="co", unit="ppm", value=500.0))
    assert validate("safecity/v1/gas/gas-001/reading", co, NOW, urgent=Urgency(co_ppm=0.0)).kafka_topic == \
        topics.KAFKA_TOPICS[MessageKind.GAS_READING]
    plate = validate("safecity/v1/camera/cp-001/plate-read", f.payload(f.plate_read()), NOW, urgent=Urgency())
    assert isinstance(plate, Accepted) and plate.kafka_topic == topics.KAFKA_TOPICS[MessageKind.PLATE_READ]


def test_a_device_stays_urgent_for_a_while_after_its_last_alarming_reading_so_its_order_holds():
    def gas(sensor: str, value: float):
        return schemas.decode_event(MessageKind.GAS_READING, f.payload(f.gas_reading(sensor_id=sensor, value=value)))

    urgent = UrgentDevices(Urgency(lel=10.0), sticky_s=60.0)
    assert not urgent(gas("a", 3.0), 0.0)
    assert urgent(gas("a", 12.0), 1.0)
    assert urgent(gas("a", 3.0), 2.0)  # falling again, within the minute: still urgent (a burst goes one way)
    assert not urgent(gas("b", 3.0), 2.0)  # per device
    assert urgent(gas("a", 2.0), 60.9)
    assert not urgent(gas("a", 2.0), 61.0)  # a minute after the last alarming one
    assert urgent(gas("a", 10.0), 61.5) and urgent(gas("a", 1.0), 121.4) and not urgent(gas("a", 1.0), 121.6)
    assert urgent.until == {}  # a device back to routine is forgotten


@pytest.mark.parametrize(("topic", "payload", "code"), [
    ("safecity/v1/gas/gas-001/reading", b"{oops", "not-json"),
    ("safecity/v1/gas/gas-001/reading", f.payload(f.gas_reading(value="high")), "schema-invalid"),
    ("safecity/v1/gas/gas-002/reading", f.payload(f.gas_reading()), "device-mismatch"),
    ("safecity/v1/gas/gas-001/telemetry", f.payload(f.gas_reading()), "unknown-message"),
    ("safecity/v1/gas/gas-001/reading", f.payload(f.gas_reading(measured_at=f.iso(NOW + timedelta(hours=1)))),
     "event-time-future"),
    ("safecity/v1/gas/gas-001/reading", f.payload(f.gas_reading(measured_at="1900-01-01T00:00:00Z")),
     "event-time-past"),
    ("safecity/v1/gas/gas-001/reading/extra", f.payload(f.gas_reading()), "bad-topic"),
    ("safecity/v1/gas/gas-001/reading", b" " * (MAX_PAYLOAD_BYTES + 1), "payload-too-large"),
    ("safecity/v1/hotel/hotel-001/registration", b"\xff\xfe\x00", "not-json"),
])
def test_bad_input_becomes_a_dead_letter_with_a_reason(topic, payload, code):
    result = validate(topic, payload, NOW)
    assert isinstance(result, Rejected)
    dl = result.dead_letter
    assert (dl.stage, dl.reason_code, dl.source) == ("ingest", code, topic)
    assert dl.payload == payload[: schemas.DEAD_LETTER_PAYLOAD_MAX] and dl.payload_size == len(payload)
    assert dl.reason


def test_dead_letter_reason_carries_no_personal_data():
    reg = f.registration(birth_date="not a date")
    result = validate("safecity/v1/hotel/hotel-001/registration", f.payload(reg), NOW)
    assert isinstance(result, Rejected)
    assert "birth_date" in result.dead_letter.reason
    for secret in (reg["guest_name"], reg["id_number"]):
        assert secret not in result.dead_letter.reason


def test_devices_cannot_set_ingest_time():
    data = f.gas_reading(ingested_at=f.iso(f.T0 - timedelta(days=1)))
    result = validate("safecity/v1/gas/gas-001/reading", f.payload(data), NOW)
    assert isinstance(result, Accepted)
    assert json.loads(result.value)["ingested_at"].startswith(NOW.isoformat()[:19])


def test_ingest_subscribes_to_every_topic_shape_below_the_device_namespaces():
    from paho.mqtt.client import topic_matches_sub

    from models import topics

    for topic in ("safecity/v1/gas/gas-001/reading/extra", "safecity/v1/gas/gas-001", "safecity/v1/camera/x/y/z"):
        assert any(topic_matches_sub(sub, topic) for sub in topics.INGEST_SUBSCRIPTIONS), topic
    assert not any(topic_matches_sub(sub, "safecity/v1/alerts/gas-level-1/gas-001/x")
                   for sub in topics.INGEST_SUBSCRIPTIONS)


def test_the_age_bound_is_a_setting():
    from datetime import timedelta as td

    old = f.payload(f.gas_reading(measured_at=f.iso(NOW - td(days=2))))
    assert isinstance(validate("safecity/v1/gas/gas-001/reading", old, NOW), Accepted)
    assert isinstance(validate("safecity/v1/gas/gas-001/reading", old, NOW, max_age=td(days=1)), Rejected)


def test_no_topic_or_payload_ever_ends_as_an_internal_error():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    levels = st.sampled_from(["safecity", "v1", "gas", "camera", "hotel", "gas-001", "reading", "frame",
                              "plate-read", "registration", "status", "", "+", "x" * 70, "é"])
    topic = st.one_of(st.lists(levels, min_size=1, max_size=7).map("/".join), st.text(max_size=80))
    good = st.sampled_from([f.payload(f.gas_reading()), b'{"device_id": "gas-001", "state": "online"}'])
    payload = st.one_of(st.binary(max_size=300), good, st.text(max_size=200).map(str.encode),
                        st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=10),
                                     lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c,
                                                                                        max_size=4),
                                     max_leaves=10).map(lambda v: json.dumps(v).encode()))

    @settings(max_examples=400, deadline=None)
    @given(topic, payload)
    def check(t, p):
        result = validate(t, p, NOW)
        if isinstance(result, Rejected):
            assert result.dead_letter.reason_code != "internal-error", (t, p, result.dead_letter.reason)

    check()
