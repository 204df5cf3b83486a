import logging

from ingest.bridge import RateLimit


def test_aiokafka_errors_are_rate_limited_and_ours_are_not():
    f = RateLimit("aiokafka", every_s=60)

    def rec(name, msg):
        return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, (), None)

    assert f.filter(rec("aiokafka.conn", "Unable connect to %s"))
    assert not any(f.filter(rec("aiokafka.conn", "Unable connect to %s")) for _ in range(5000))
    assert all(f.filter(rec("ingest.bridge", "Kafka did not take a message")) for _ in range(3))


def test_a_share_group_puts_every_lane_on_a_shared_subscription():
    from ingest.bridge import Bridge
    from models.settings import Settings

    plain = Bridge(Settings())
    assert [lane.subscriptions for lane in plain.lanes] == [("safecity/v1/camera/#",), ("safecity/v1/hotel/#",),
                                                            ("safecity/v1/gas/#",)]
    shared = Bridge(Settings(mqtt={"ingest_client_id": "ingest-2", "ingest_share_group": "ingest"}))
    assert [lane.subscriptions for lane in shared.lanes] == [("$share/ingest/safecity/v1/camera/#",),
                                                             ("$share/ingest/safecity/v1/hotel/#",),
                                                             ("$share/ingest/safecity/v1/gas/#",)]
    assert shared.headers == [("ingest", b"ingest-2")]
