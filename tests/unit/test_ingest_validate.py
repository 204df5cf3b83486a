import json
from datetime import timedelta

import pytest

from ingest.validate import MAX_PAYLOAD_BYTES, Accepted, Rejected, validate
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
