import base64

import pytest

from models import schemas
from models.schemas import SchemaError
from models.topics import MessageKind
from tests import factories as f

VALID = [
    (MessageKind.PLATE_READ, f.plate_read()),
    (MessageKind.PLATE_READ, f.plate_read(snapshot_jpeg=base64.b64encode(b"\xff\xd8\xff jpeg").decode())),
    (MessageKind.REGISTRATION, f.registration()),
    (MessageKind.REGISTRATION, f.registration(id_type="passport", id_number="E12345678", nationality="USA")),
    (MessageKind.GAS_READING, f.gas_reading()),
    (MessageKind.GAS_READING, f.gas_reading(gas="co", unit="ppm", value=35.0, battery=None)),
    (MessageKind.GAS_READING, f.gas_reading(value=None)),
    (MessageKind.STATUS, f.status()),
    (MessageKind.STATUS, {"device_id": "cp-001", "state": "offline"}),  # a last will carries no time
    (MessageKind.FRAME, {"camera_id": "cam-1", "seq": 3, "captured_at": f.iso(f.T0),
                         "image": base64.b64encode(b"\xff\xd8\xff...").decode()}),
]

INVALID = [
    (MessageKind.PLATE_READ, f.plate_read(confidence=1.5), "confidence"),
    (MessageKind.PLATE_READ, f.plate_read(plate_colour="purple"), "plate_colour"),
    (MessageKind.PLATE_READ, f.plate_read(captured_at="2026-11-29T08:00:00"), "captured_at"),  # no zone
    (MessageKind.PLATE_READ, f.plate_read(snapshot_jpeg="not base64!"), "snapshot_jpeg"),
    (MessageKind.PLATE_READ, f.plate_read(
        snapshot_jpeg=base64.b64encode(b"x" * (schemas.MAX_SNAPSHOT_BYTES + 1)).decode()), "snapshot_jpeg"),
    (MessageKind.REGISTRATION, f.registration(nationality="China"), "nationality"),
    (MessageKind.REGISTRATION, f.registration(birth_date="1949-13-01"), "birth_date"),
    (MessageKind.REGISTRATION, {k: v for k, v in f.registration().items() if k != "room"}, "room"),
    (MessageKind.GAS_READING, f.gas_reading(unit="ppm"), "unit must be %LEL"),
    (MessageKind.GAS_READING, f.gas_reading(value="high"), "value"),
    (MessageKind.GAS_READING, f.gas_reading(battery=140), "battery"),
    (MessageKind.GAS_READING, f.gas_reading(colour="red"), "unknown field"),  # an error, its name not repeated
    (MessageKind.STATUS, f.status(state="sleeping"), "state"),
    (MessageKind.FRAME, {"camera_id": "cam-1", "seq": -1, "captured_at": f.iso(f.T0), "image": ""}, "seq"),
    (MessageKind.FRAME, {"camera_id": "cam-1", "seq": 1, "captured_at": f.iso(f.T0)}, "image"),
]


@pytest.mark.parametrize(("kind", "data"), VALID)
def test_valid_messages_decode_and_round_trip(kind, data):
    event = schemas.decode_event(kind, f.payload(data))
    assert schemas.decode_event(kind, schemas.encode(event)) == event


@pytest.mark.parametrize(("kind", "data", "field"), INVALID)
def test_invalid_messages_name_the_field_not_the_value(kind, data, field):
    with pytest.raises(SchemaError) as err:
        schemas.decode_event(kind, f.payload(data))
    assert err.value.code == "schema-invalid"
    assert field in str(err.value)
    assert "张伟" not in str(err.value) and "11010519491231002X" not in str(err.value)


def test_not_json_has_its_own_code():
    with pytest.raises(SchemaError) as err:
        schemas.decode_event(MessageKind.GAS_READING, b'{"sensor_id": ')
    assert err.value.code == "not-json"


def test_snapshot_decodes_to_bytes():
    read = schemas.decode_event(MessageKind.PLATE_READ,
                                f.payload(f.plate_read(snapshot_jpeg=base64.b64encode(b"\xff\xd8abc").decode())))
    assert read.snapshot_jpeg == b"\xff\xd8abc"


def test_dead_letter_keeps_a_bounded_copy():
    raw = b"x" * (schemas.DEAD_LETTER_PAYLOAD_MAX + 10)
    dl = schemas.dead_letter("ingest", "not-json", "why", "safecity/v1/gas/g/reading", raw, f.T0)
    assert len(dl.payload) == schemas.DEAD_LETTER_PAYLOAD_MAX and dl.truncated and dl.payload_size == len(raw)
    assert schemas.decode_as(schemas.DeadLetter, schemas.encode(dl)) == dl


@pytest.mark.parametrize("raw, expected", [
    ('{"id_type": "11010519491231002X"}', "Invalid enum value - at `$.id_type`"),
    ('{"欧阳锋测试": 1}', "Object contains an unknown field"),
])
def test_dead_letter_reasons_never_carry_input_values_or_made_up_field_names(raw, expected):
    from models.schemas import HotelRegistration, SchemaError, decode_as

    with pytest.raises(SchemaError) as err:
        decode_as(HotelRegistration, raw)
    assert str(err.value) == expected


def test_reasons_keep_the_schemas_words_and_drop_dict_keys():
    from models.schemas import safe_reason

    assert safe_reason("Expected `int`, got `str` - at `$.thresholds[张伟]`") == \
        "Expected `int`, got `str` - at `$.thresholds[...]`"
    assert safe_reason("Expected `str` of length <= 64 - at `$.guest_name`") == \
        "Expected `str` of length <= 64 - at `$.guest_name`"
    assert safe_reason("Expected `array`, got `object` - at `$.items[3]`") == \
        "Expected `array`, got `object` - at `$.items[3]`"
    assert "110105" not in safe_reason("Invalid value '110105198001011234' for `x` - at `$.a`")


def test_a_pack_of_events_unpacks_to_each_event_byte_for_byte_in_order():
    events = [schemas.encode(f.gas_reading(seq=i)) for i in range(3)] + [b'{"sensor_id": "g-1", "seq": 4}']
    packed = schemas.pack(events)
    assert schemas.unpack(packed) == events
    assert [schemas.decode_event(MessageKind.GAS_READING, v).seq for v in schemas.unpack(packed)[:3]] == [0, 1, 2]
    one = events[0]  # a record that is one event is itself, not a pack
    assert schemas.unpack(one) == [one]


@pytest.mark.parametrize("raw", [b"[", b'[{"seq": 1}', b"[1,]", b'["a" "b"]'])
def test_a_pack_that_does_not_parse_is_a_schema_error_with_its_own_code(raw):
    with pytest.raises(SchemaError) as err:
        schemas.unpack(raw)
    assert err.value.code == "pack-invalid"
