"""The audit trail on the real pipeline: the alert service chains the tools' requests and its own
operators' actions; `safecity audit verify` passes on it, and fails naming the record after a record
is forged with Kafka access (no audit key) and after the first records are deleted."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from alerting.audit import Chain
from models import schemas, topics
from models.schemas import AuditRecord
from tests.integration.conftest import add_user
from tests.integration.harness import ROOT, poll

pytestmark = pytest.mark.integration


def cli(stack_env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "safecity.cli", *args], env=stack_env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def shown(stack_env, **filters) -> list[dict]:
    args = [f"--{k}={v}" for k, v in filters.items()]
    out = cli(stack_env, "audit", "show", *args)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_the_trail_is_chained_verified_and_tampering_is_named(pipeline, stack_env, settings, tmp_path):
    officer = f"auditor-{uuid.uuid4().hex[:6]}"
    stack_env = stack_env | {"SAFECITY_ALERTS__TOKEN": add_user(stack_env, officer, "admin")}
    listing = tmp_path / "vehicles.csv"
    listing.write_text("entry_id,plate,category,priority,valid_from,valid_until\n"
                       f"aud-{officer},京A55555,stolen-vehicle,2,,\n", encoding="utf-8")
    assert cli(stack_env, "watchlist", "import", str(listing), "--kind", "vehicles").returncode == 0
    refused = cli(stack_env, "watchlist", "delete", f"aud-{officer}", "--kind", "vehicles",
                  "--reason", "guest 张伟 110105198001011234 left")
    assert refused.returncode == 2 and "ID number" in refused.stderr and "110105198001011234" not in refused.stderr
    assert cli(stack_env, "watchlist", "delete", f"aud-{officer}", "--kind", "vehicles",
               "--reason", "entry withdrawn").returncode == 0

    mine = poll(lambda: (r := shown(stack_env, by=officer)) and len(r) == 2 and r, 60, "both requests chained")
    assert [r["action"] for r in mine] == ["watchlist-import-vehicles", "watchlist-delete-vehicles"]
    assert all(r["seq"] >= 0 and r["mac"] and r["prev"] for r in mine) and mine[1]["seq"] > mine[0]["seq"]
    assert shown(stack_env, action="watchlist-delete", by=officer)[0]["detail"] == "entry withdrawn"

    ok = cli(stack_env, "audit", "verify")
    assert ok.returncode == 0 and "intact" in ok.stdout, ok.stdout + ok.stderr

    async def forge() -> int:  # Kafka access, no audit key: a backdated record continuing the chain
        last = schemas.decode_as(AuditRecord, json.dumps(
            {k: v for k, v in mine[-1].items() if k != "offset"}).encode())
        fake = Chain(b"not-the-audit-key-but-long-enough-0")
        fake.follow(last)  # (the real head may be further on: either way the forgery is named)
        record = fake.link(AuditRecord(action="watchlist-delete-persons", by="chief-inspector",
                                       at=datetime(2026, 1, 1, tzinfo=UTC), target="p-1"))
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap)
        await producer.start()
        try:
            meta = await producer.send_and_wait(topics.KAFKA_AUDIT, schemas.encode(record), partition=0)
            return meta.offset
        finally:
            await producer.stop()

    forged_at = asyncio.run(forge())
    bad = cli(stack_env, "audit", "verify")
    assert bad.returncode == 1 and f"offset {forged_at}" in bad.stdout, bad.stdout

    async def delete_first() -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
        await admin.start()
        try:
            tp = TopicPartition(topics.KAFKA_AUDIT, 0)
            await admin.delete_records({tp: RecordsToDelete(before_offset=1)})
            return 1
        finally:
            await admin.close()

    start = asyncio.run(delete_first())
    gone = cli(stack_env, "audit", "verify")
    assert gone.returncode == 1 and f"offset {start}" in gone.stdout and "missing" in gone.stdout, gone.stdout
