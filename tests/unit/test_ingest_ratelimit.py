import logging

from ingest.bridge import RateLimit


def test_aiokafka_errors_are_rate_limited_and_ours_are_not():
    f = RateLimit("aiokafka", every_s=60)

    def rec(name, msg):
        return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, (), None)

    assert f.filter(rec("aiokafka.conn", "Unable connect to %s"))
    assert not any(f.filter(rec("aiokafka.conn", "Unable connect to %s")) for _ in range(5000))
    assert all(f.filter(rec("ingest.bridge", "Kafka did not take a message")) for _ in range(3))
