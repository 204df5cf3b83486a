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
