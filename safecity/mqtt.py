"""One way to build a paho-mqtt client from settings (ingest, the alert publisher, devices, demo)."""

from __future__ import annotations

import socket

import paho.mqtt.client as mqtt

from models.settings import MqttSettings


def make_mqtt_client(settings: MqttSettings, client_id: str, *, clean_session: bool, manual_ack: bool = False,
                     will: tuple[str, bytes] | None = None) -> mqtt.Client:
    """MQTT 3.1.1, QoS 1 in-flight messages bounded by ``settings.max_inflight``, auto-reconnect, TLS when
    ``settings.tls_ca_file`` is set."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session,
                         protocol=mqtt.MQTTv311, manual_ack=manual_ack)
    if settings.username:
        password = settings.password.get_secret_value() if settings.password else None
        client.username_pw_set(settings.username, password)
    if settings.tls_ca_file:  # the broker's certificate is verified against this CA, and its host name
        client.tls_set(ca_certs=str(settings.tls_ca_file),
                       certfile=str(settings.tls_cert_file) if settings.tls_cert_file else None,
                       keyfile=str(settings.tls_key_file) if settings.tls_key_file else None)
    if will:
        client.will_set(will[0], will[1], qos=1, retain=True)
    client.max_inflight_messages_set(min(settings.max_inflight, 65535))
    client.reconnect_delay_set(min_delay=1, max_delay=10)
    client.on_socket_open = no_delay
    return client


def no_delay(client: mqtt.Client, userdata, sock) -> None:
    """Small packets go at once (paho leaves Nagle's algorithm on): an acknowledgement or an alert is
    not held until the broker's TCP ack of the packet before it."""
    if hasattr(sock, "setsockopt"):  # a TCP or TLS socket (a websocket wrapper has none)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
