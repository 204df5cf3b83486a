"""Ingest's urgent readings, with the real bridge code and a real Kafka (MQTT left out: the messages
are put on the gas lane's queue as paho's network thread would). A sensor that turns urgent in the
middle of a burst takes its readings still waiting in the burst's pack along to the urgent topic,
ahead of the urgent one: its order holds. Other sensors' readings stay in their pack."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt

from deploy.kafka_topics import ensure_topics
from ingest.bridge import Bridge
from models import schemas, topics
from models.schemas import GasReading, GasType, GasUnit
from models.topics import DeviceKind, MessageKind
from tests.integration.harness import kafka_all


def test_a_sensor_turning_urgent_mid_burst_takes_its_packed_readings_along_in_order(stack, registry):
    settings = stack
    rising, quiet = registry.add("gas"), registry.add("gas")
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    burst = [(rising, 3.0), (quiet, 2.0), (rising, 4.0), (quiet, 2.1), (rising, 30.0), (quiet, 2.2), (rising, 31.0)]
    bridge = Bridge(settings)
    lane = next(lane for lane in bridge.lanes if lane.kind is DeviceKind.GAS)
    for i, (sensor, value) in enumerate(burst):  # one burst: all queued before the loop takes any
        msg = mqtt.MQTTMessage(mid=i + 1, topic=topics.device_topic(DeviceKind.GAS, sensor, MessageKind.GAS_READING)
                               .encode())
        msg.payload = schemas.encode(GasReading(sensor_id=sensor, gas=GasType.COMBUSTIBLE, value=value,
                                                unit=GasUnit.LEL, measured_at=t0 + timedelta(seconds=i), seq=i))
        lane.slots.acquire()
        lane.pending.append(msg)  # QoS 0 here: nothing to acknowledge to a broker

    async def run() -> None:
        bridge.loop = asyncio.get_running_loop()
        await ensure_topics(settings.kafka)
        bridge.producer = bridge._make_producer()
        await bridge.producer.start()
        await bridge.producer.partitions_for(topics.KAFKA_TOPICS[MessageKind.GAS_READING])  # as after a first send
        loop = asyncio.create_task(bridge._produce_loop())
        try:
            while bridge.counters.pending or lane.pending or bridge.inflight or not bridge.sent:
                await asyncio.sleep(0.05)
        finally:
            loop.cancel()
            await bridge.producer.stop()

    asyncio.run(asyncio.wait_for(run(), 60))
    urgent = kafka_all(settings, topics.KAFKA_URGENT[MessageKind.GAS_READING], lambda k, v: k == rising.encode(), 4)
    assert [schemas.decode_as(GasReading, r.value).value for r in urgent] == [3.0, 4.0, 30.0, 31.0]
    assert [r.offset for r in urgent] == sorted(r.offset for r in urgent)  # in order, on one partition
    routine = kafka_all(settings, topics.KAFKA_TOPICS[MessageKind.GAS_READING],
                        lambda k, v: k in (rising.encode(), quiet.encode()), 3)
    assert [(r.key, schemas.decode_as(GasReading, r.value).value) for r in routine] == [
        (quiet.encode(), 2.0), (quiet.encode(), 2.1), (quiet.encode(), 2.2)]
    assert bridge.counters.accepted["reading"] == len(burst)
