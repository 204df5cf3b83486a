"""Personal data at rest, on the real pipeline: simulated guests register at a hotel (one of them on the
watch list, one registration malformed); then everything the pipeline wrote is searched for their
names and ID numbers in the clear: every Kafka topic (keys and values, the workers' changelogs
included), InfluxDB (series and values), retained MQTT messages, the alert store, and every log."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from devices.client import DeviceClient
from devices.simulators import HotelSim
from models import schemas, topics
from models.schemas import DeadLetter
from models.topics import DeviceKind, MessageKind
from processors.watchlists import partitions_of
from tests.integration.harness import ROOT, MqttProbe, influx_query, kafka_records, poll, retained

pytestmark = pytest.mark.integration


async def kafka_hits(bootstrap: str, needles: list[bytes]) -> dict[str, set[bytes]]:
    """Topic -> the needles found in any record's key or value, reading every topic to its end."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if not t.startswith("__")]
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    found: dict[str, set[bytes]] = {}
    try:
        parts = [TopicPartition(t, p) for t in names for p in await partitions_of(consumer, t)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        end = await consumer.end_offsets(parts)
        todo = {tp for tp in parts if end[tp] > 0}
        while todo:
            batch = await consumer.getmany(*todo, timeout_ms=2000, max_records=5000)
            for tp, records in batch.items():
                for r in records:
                    blob = (r.key or b"") + b"\x00" + (r.value or b"")
                    for n in needles:
                        if n in blob:
                            found.setdefault(tp.topic, set()).add(n)
            for tp in list(todo):
                if await consumer.position(tp) >= end[tp]:
                    todo.discard(tp)
    finally:
        await consumer.stop()
    return found


def test_no_guest_name_or_id_number_is_kept_in_the_clear(pipeline, settings, registry, postgres, admin_env,
                                                         stack_env, api_token, services_dir, tmp_path):
    hotel = registry.add("hotel")
    sim = HotelSim(hotel, random.Random(20261130))
    now = datetime.now(UTC)
    guests = [sim.next(now) for _ in range(12)]
    listed = guests[3]  # this guest's ID number is on the watch list (entered by an operator)
    listing = tmp_path / "persons.csv"
    tag = uuid.uuid4().hex[:6]
    listing.write_text("entry_id,name,id_number,birth_date_from,birth_date_to,category,priority,valid_from,valid_until\n"
                       f"pd-{tag},,{listed.id_number},,,wanted-person,1,,\n", encoding="utf-8")
    subprocess.run([sys.executable, "-m", "safecity.cli", "watchlist", "import", str(listing), "--kind", "persons"],
                   env=admin_env, cwd=ROOT, check=True, capture_output=True)
    probe = MqttProbe(settings, f"{topics.PREFIX}/alerts/watchlist-person/{hotel}/#")
    desk = DeviceClient(settings.mqtt, DeviceKind.HOTEL, hotel).start()
    bad_name, bad_number = "诸葛测试丙", "110105199001011237"
    try:
        for reg in guests:
            desk.publish(MessageKind.REGISTRATION, reg).wait_for_publish(10)
        malformed = json.dumps({**schemas.to_builtins(guests[0]), "guest_name": bad_name, "id_number": bad_number,
                                "nickname": "unknown field"}, ensure_ascii=False).encode()
        desk.client.publish(topics.device_topic(DeviceKind.HOTEL, hotel, MessageKind.REGISTRATION), malformed,
                            qos=1).wait_for_publish(10)
        lead = probe.next_json(120)  # the listed guest's lead: the pipeline matched (so it opened the records)
    finally:
        desk.close()
        probe.close()
    assert lead["details"]["registration_id"] == listed.registration_id
    # a supervisor may open the lead's guest, saying why; audited before it is opened; an operator may not
    from tests.integration.conftest import add_user
    from tests.integration.test_alerting import api

    opened = poll(lambda: (r := api(settings, api_token, "POST", f"/api/v1/alerts/{lead['alert_id']}/subject",
                                    {"reason": "verifying the lead at the desk"}))[0] == 200 and r[1], 60,
                  "the lead in the store, opened")
    assert (opened["guest_name"], opened["id_number"]) == (listed.guest_name, listed.id_number)
    operator = add_user(stack_env, f"op-{tag}", "operator")
    assert api(settings, operator, "POST", f"/api/v1/alerts/{lead['alert_id']}/subject", {"reason": "x"})[0] == 403
    trail = subprocess.run([sys.executable, "-m", "safecity.cli", "audit", "show", "--action", "alert-open-subject"],
                           env=stack_env, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert any(json.loads(line)["target"] == lead["alert_id"] and json.loads(line)["by"] == "duty-officer"
               for line in trail.splitlines())
    letters = poll(lambda: [schemas.decode_as(DeadLetter, r.value) for r in kafka_records(
        settings, topics.KAFKA_DEAD_LETTERS, lambda k, v: hotel.encode() in k, timeout=5)], 60, "the dead letter")
    assert letters[0].sealed and letters[0].reason_code == "schema-invalid"
    poll(lambda: (r := influx_query(settings, f"SELECT count FROM registrations WHERE hotel_id = '{hotel}'"))
         and len(r) == len(guests), 60, "the registrations' metrics")

    names = {g.guest_name for g in guests} | {bad_name}
    numbers = {g.id_number for g in guests} | {bad_number}
    needles = {n.encode() for n in names | numbers} | {n.lower().encode() for n in numbers}
    where: dict[str, set] = {}

    # Kafka: every topic; the listed number is on the persons list by design, nowhere else
    for topic, found in asyncio.run(kafka_hits(settings.kafka.bootstrap, sorted(needles))).items():
        if topic == topics.KAFKA_WATCHLIST_PERSONS:
            found -= {listed.id_number.encode(), listed.id_number.lower().encode()}
        if found:
            where[f"kafka:{topic}"] = found
    # InfluxDB: every series and every value written in the last hour
    series = json.dumps(influx_query(settings, "SHOW SERIES"), ensure_ascii=False)
    values = json.dumps(influx_query(settings, "SELECT * FROM /.*/ WHERE time > now() - 1h"), ensure_ascii=False)
    # retained MQTT messages, the alert store, and every log the servers and processes wrote
    mqtt_text = json.dumps(retained(settings, "#"), ensure_ascii=False)
    engine = sa.create_engine(postgres.url())
    with engine.connect() as conn:
        store = " ".join(str(row) for t in sa.inspect(conn).get_table_names()
                         for row in conn.execute(sa.text(f'SELECT * FROM "{t}"')))
    engine.dispose()
    logs = {str(p): p.read_bytes() for p in Path(services_dir).rglob("*.log") if p.is_file()}
    for label, text in (("influxdb:series", series), ("influxdb:values", values), ("mqtt:retained", mqtt_text),
                        ("alert store", store)):
        found = {n for n in needles if n.decode() in text}
        if found:
            where[label] = found
    for path, blob in logs.items():  # Kafka's own segment files (*.log) too: the topics as stored on disk
        found = {n for n in needles if n in blob}
        if f"/{topics.KAFKA_WATCHLIST_PERSONS}-" in path:
            found -= {listed.id_number.encode(), listed.id_number.lower().encode()}
        if found:
            where[path] = found
    assert where == {}, {k: sorted(x.decode() for x in v) for k, v in where.items()}
