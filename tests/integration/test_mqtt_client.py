"""The project's MQTT clients (safecity/mqtt.py: ingest, the alert publisher, devices, demo) on the
real Mosquitto: their small packets are not held back by Nagle's algorithm, on every connection."""

from __future__ import annotations

import socket
import threading
import uuid

import paho.mqtt.client as mqtt

from safecity.mqtt import make_mqtt_client


def test_every_connection_of_a_client_sends_without_nagle_delay(stack):
    settings = stack
    client = make_mqtt_client(settings.mqtt, f"nodelay-{uuid.uuid4().hex[:8]}", clean_session=True)
    connected = threading.Event()
    client.on_connect = lambda *a: connected.set()
    client.connect(settings.mqtt.host, settings.mqtt.port)
    client.loop_start()
    try:
        assert connected.wait(10)
        first = client.socket()
        assert first.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        connected.clear()
        client.reconnect()  # a new socket, as after a dropped connection
        assert connected.wait(10)
        second = client.socket()
        assert second is not first
        assert second.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        client.disconnect()
        client.loop_stop()
    # a plain paho client's socket has it off: the setting is ours, not the library's default
    plain = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"plain-{uuid.uuid4().hex[:8]}")
    plain.connect(settings.mqtt.host, settings.mqtt.port)
    try:
        assert plain.socket().getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
    finally:
        plain.disconnect()
