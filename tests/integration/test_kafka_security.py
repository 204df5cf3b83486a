"""Kafka with a SASL/SCRAM listener (as the compose stack's operator listener can be): the project's
clients connect with the security settings, the operators' tool works through it, and a wrong
password or a plaintext client is refused. A Kafka of its own, so the session's is untouched."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from deploy import services
from deploy.kafka_topics import client_args, ensure_topics
from models import schemas, topics
from models.schemas import AuditRecord
from models.settings import KafkaSettings
from tests.integration.harness import kafka_config, poll

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = uuid.uuid4().hex


@pytest.fixture(scope="module")
def kafka(services_dir, settings):
    port, controller, sasl = services.free_ports(3)
    broker = services.Kafka("kafka-sasl", services_dir / "kafka-sasl", "127.0.0.1", port, controller_port=controller,
                            libs=settings.services.kafka_libs, heap="384m", partitions=1, sasl_port=sasl,
                            scram_users={"operator": PASSWORD})
    broker.run_dir.mkdir(parents=True, exist_ok=True)
    broker.install()
    broker.start()
    yield broker
    broker.stop()


def secured(kafka, password: str = PASSWORD, **kw) -> KafkaSettings:
    return KafkaSettings(bootstrap=f"127.0.0.1:{kafka.sasl_port}", partitions=1, security_protocol="SASL_PLAINTEXT",
                         sasl_mechanism="SCRAM-SHA-512", sasl_username="operator", sasl_password=password, **kw)


def test_the_clients_connect_with_scram(kafka):
    k = secured(kafka)

    async def round_trip() -> bytes:
        assert topics.KAFKA_AUDIT in await ensure_topics(k)  # the admin client, through SASL
        producer = AIOKafkaProducer(**client_args(k), acks="all", enable_idempotence=True)
        await producer.start()
        try:
            await producer.send_and_wait(topics.KAFKA_AUDIT, b"sentinel", key=b"t")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topics.KAFKA_AUDIT, **client_args(k), auto_offset_reset="earliest",
                                    group_id=None)
        await consumer.start()
        try:
            return (await asyncio.wait_for(consumer.getone(), 30)).value
        finally:
            await consumer.stop()

    assert asyncio.run(round_trip()) == b"sentinel"


def test_a_wrong_password_or_plaintext_is_refused(kafka):
    async def connect(k: KafkaSettings) -> None:
        producer = AIOKafkaProducer(**client_args(k), request_timeout_ms=5000)
        try:
            await producer.start()
        finally:
            await producer.stop()

    with pytest.raises(KafkaError):
        asyncio.run(connect(secured(kafka, password="wrong")))
    with pytest.raises(KafkaError):  # a client without SASL on the SASL listener
        asyncio.run(connect(KafkaSettings(bootstrap=f"127.0.0.1:{kafka.sasl_port}")))


def test_the_list_publisher_works_through_the_secured_listener(kafka, tmp_path):
    """The server side of an import (`safecity watchlist publish`, which the alert API runs) with nothing
    but environment settings."""
    listing = tmp_path / "vehicles.csv"
    listing.write_text("entry_id,plate,category,priority,valid_from,valid_until\nsec-1,京A12345,stolen-vehicle,1,,\n",
                       encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFECITY_")} | {
        "SAFECITY_KAFKA__BOOTSTRAP": f"127.0.0.1:{kafka.sasl_port}", "SAFECITY_KAFKA__PARTITIONS": "1",
        "SAFECITY_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT", "SAFECITY_KAFKA__SASL_USERNAME": "operator",
        "SAFECITY_KAFKA__SASL_PASSWORD": PASSWORD}
    out = subprocess.run([sys.executable, "-m", "safecity.cli", "watchlist", "publish", str(listing), "--kind",
                          "vehicles", "--by", "sec-test"], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]

    async def audit_records() -> list[AuditRecord]:  # the tool's request, before it changed the list
        k = secured(kafka)
        consumer = AIOKafkaConsumer(topics.KAFKA_AUDIT_REQUESTS, **client_args(k), auto_offset_reset="earliest",
                                    group_id=None)
        await consumer.start()
        try:
            batch = await consumer.getmany(timeout_ms=10_000)
            return [schemas.decode_as(AuditRecord, r.value) for rs in batch.values() for r in rs if r.value != b"sentinel"]
        finally:
            await consumer.stop()

    (record,) = [r for r in asyncio.run(audit_records()) if r.by == "sec-test"]
    assert record.action == "watchlist-import-vehicles" and record.count == 1


def test_personal_data_is_kept_only_as_long_as_the_setting_says(kafka):
    """Registrations (sealed personal data) live personal_retention_h on Kafka, also on a topic created
    before the setting changed."""
    topic = topics.KAFKA_TOPICS[topics.MessageKind.REGISTRATION]

    def kept_for(hours: float) -> None:
        k = secured(kafka, personal_retention_h=hours)
        asyncio.run(ensure_topics(k))
        want = str(int(hours * 3600 * 1000))
        # the broker applies a changed topic configuration through its metadata log, a moment after
        # it acknowledged the change: polled, as reading it once right away failed now and then
        poll(lambda: kafka_config(k, "topic", topic)["retention.ms"] == want, 15, f"{topic} kept {hours} h")

    kept_for(30)
    kept_for(72)  # changed on the existing topic
