import pytest

from models import topics
from models.topics import DeviceKind, MessageKind, TopicError


@pytest.mark.parametrize(("kind", "message"), [(k, m) for k, ms in topics.ALLOWED.items() for m in ms])
def test_build_and_parse_round_trip(kind, message):
    topic = topics.device_topic(kind, "dev-1.a_b", message)
    assert topic == f"safecity/v1/{kind.value}/dev-1.a_b/{message.value}"
    parsed = topics.parse_device_topic(topic)
    assert (parsed.kind, parsed.device_id, parsed.message) == (kind, "dev-1.a_b", message)
    assert str(parsed) == topic


@pytest.mark.parametrize(("topic", "code"), [
    ("safecity/v1/gas/g1", "bad-topic"),
    ("safecity/v2/gas/g1/reading", "bad-topic"),
    ("other/v1/gas/g1/reading", "bad-topic"),
    ("safecity/v1/gas/g1/reading/extra", "bad-topic"),
    ("safecity/v1/drone/g1/reading", "unknown-kind"),
    ("safecity/v1/gas/g1/telemetry", "unknown-message"),
    ("safecity/v1/gas/g1/plate-read", "bad-message"),
    ("safecity/v1/hotel/g1/reading", "bad-message"),
    ("safecity/v1/gas/bad id/reading", "bad-device-id"),
    ("safecity/v1/gas//reading", "bad-device-id"),
    ("safecity/v1/gas/" + "x" * 65 + "/reading", "bad-device-id"),
])
def test_bad_topics_have_reason_codes(topic, code):
    with pytest.raises(TopicError) as err:
        topics.parse_device_topic(topic)
    assert err.value.code == code


def test_builder_refuses_what_parser_refuses():
    with pytest.raises(TopicError):
        topics.device_topic(DeviceKind.GAS, "g1", MessageKind.PLATE_READ)
    with pytest.raises(TopicError):
        topics.device_topic(DeviceKind.GAS, "g/1", MessageKind.GAS_READING)


def test_every_event_kind_has_a_kafka_topic_and_outputs_are_outside_ingest_subscriptions():
    assert set(topics.KAFKA_TOPICS) == set(MessageKind)
    assert len(set(topics.KAFKA_TOPICS.values()) | {topics.KAFKA_ALERTS, topics.KAFKA_DEAD_LETTERS}) == 7
    assert topics.KAFKA_GAS_TICKS not in topics.KAFKA_TOPICS.values()
    assert topics.KAFKA_WATCHLIST_VEHICLES != topics.KAFKA_WATCHLIST_PERSONS
    for output in (topics.alert_topic("gas-level-1", "gas-001", "gas-level-1:gas-001"), topics.stats_topic("ingest")):
        assert not any(output.startswith(sub[:-4]) for sub in topics.INGEST_SUBSCRIPTIONS)


def test_each_alert_has_its_own_retained_topic_without_wildcards():
    a = topics.alert_topic("watchlist-vehicle", "cp-001", "watch:v-1:cp-001:ab12")
    b = topics.alert_topic("watchlist-vehicle", "cp-001", "watch:v-2:cp-001:cd34")
    assert a != b and a.startswith("safecity/v1/alerts/watchlist-vehicle/cp-001/")
    assert topics.alert_topic("x", "d", "a/b+c#") == "safecity/v1/alerts/x/d/a_b_c_"


def test_partition_of_places_a_key_as_kafkas_default_partitioner_does():
    """Ingest groups readings into packs by this partition: it must be the one the producer's own
    partitioner gives the key, or a sensor's packed and lone readings would split across partitions."""
    from aiokafka.partitioner import DefaultPartitioner

    from deploy.kafka_topics import partition_of

    keys = [f"gas-{i:05d}".encode() for i in range(500)] + [b"", "测试".encode()]
    for partitions in (1, 4, 7):
        placed = [partition_of(k, partitions) for k in keys]
        assert placed == [DefaultPartitioner()(k, list(range(partitions)), []) for k in keys]
    assert len(set(partition_of(k, 4) for k in keys)) == 4
