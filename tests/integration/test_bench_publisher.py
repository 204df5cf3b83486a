"""The benchmarks' load publisher (bench/mqtt_load.py) speaks MQTT QoS 1 to the real Mosquitto: every
message arrives, in order, with its topic and payload, and every one is acknowledged."""

from __future__ import annotations

import queue
import uuid

import paho.mqtt.client as mqtt

from bench.mqtt_load import QoS1Publisher, publish_packet, remaining_length


def test_remaining_length_is_mqtts_variable_length_encoding():
    assert [remaining_length(n) for n in (0, 127, 128, 16_383, 16_384, 2_097_151)] == [
        b"\x00", b"\x7f", b"\x80\x01", b"\xff\x7f", b"\x80\x80\x01", b"\xff\xff\x7f"]
    packet = publish_packet(b"a/b", b"xyz", 0x0102)
    assert packet == b"\x32\x0a\x00\x03a/b\x01\x02xyz"


def test_every_message_arrives_in_order_and_is_acknowledged(stack):
    settings = stack
    base = f"bench/test/{uuid.uuid4().hex[:8]}"
    got: queue.Queue[tuple[str, bytes]] = queue.Queue()
    subscribed = queue.Queue()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex[:8]}")
    sub.on_connect = lambda c, *a: c.subscribe(f"{base}/#", qos=1)
    sub.on_subscribe = lambda *a: subscribed.put(True)
    sub.on_message = lambda c, u, m: got.put((m.topic, m.payload))
    sub.connect(settings.mqtt.host, settings.mqtt.port)
    sub.loop_start()
    try:
        subscribed.get(timeout=10)
        pub = QoS1Publisher(settings.mqtt.host, settings.mqtt.port, f"pub-{uuid.uuid4().hex[:8]}")
        big = bytes(range(256)) * 600  # 153,600 bytes: a four-byte remaining length
        sent = [(f"{base}/d{i % 7}".encode(), f"m{i}".encode() * (1 + i % 50)) for i in range(2_500)]
        sent.append((f"{base}/big".encode(), big))
        pub.publish(sent[:100])  # one write of a hundred
        pub.publish_all(f"{base}/all".encode(), [f"a{i}".encode() for i in range(70_000)], window=1000)
        pub.publish(sent[100:])
        assert pub.wait_acked(60), (pub.acked, pub.sent)
        assert pub.sent == pub.acked == len(sent) + 70_000  # packet ids wrapped past 65,535 on the way
        pub.close()
        received = [got.get(timeout=30) for _ in range(len(sent) + 70_000)]
    finally:
        sub.disconnect()
        sub.loop_stop()
    all_topic = f"{base}/all"
    assert [p for t, p in received if t == all_topic] == [f"a{i}".encode() for i in range(70_000)]
    assert [(t, p) for t, p in received if t != all_topic] == [(t.decode(), p) for t, p in sent]
