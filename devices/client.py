"""The device-side MQTT client: its own client id, a retained ``online`` status published on every
(re)connect, a retained ``offline`` last will, QoS 1 with bounded in-flight messages, reconnect."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

import paho.mqtt.client as mqtt

from models import schemas, topics
from models.schemas import DeviceState, DeviceStatus
from models.settings import MqttSettings
from models.topics import DeviceKind, MessageKind
from safecity.mqtt import make_mqtt_client

logger = logging.getLogger(__name__)


class DeviceClient:
    def __init__(self, settings: MqttSettings, kind: DeviceKind, device_id: str) -> None:
        self.kind, self.device_id = kind, device_id
        self.status_topic = topics.device_topic(kind, device_id, MessageKind.STATUS)
        will = schemas.encode(DeviceStatus(device_id=device_id, state=DeviceState.OFFLINE))
        self.client = make_mqtt_client(settings, device_id, clean_session=True, will=(self.status_topic, will))
        self.client.on_connect = self._on_connect
        self.connected = threading.Event()
        self._settings = settings

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            logger.warning("device %s: connect refused (%s)", self.device_id, reason_code)
            return
        self._publish_status(DeviceState.ONLINE)
        self.connected.set()

    def _publish_status(self, state: DeviceState) -> mqtt.MQTTMessageInfo:
        status = DeviceStatus(device_id=self.device_id, state=state, at=datetime.now(UTC))
        return self.client.publish(self.status_topic, schemas.encode(status), qos=1, retain=True)

    def start(self, timeout: float = 10.0) -> DeviceClient:
        self.client.connect_async(self._settings.host, self._settings.port, keepalive=self._settings.keepalive)
        self.client.loop_start()
        if not self.connected.wait(timeout):
            self.client.loop_stop()
            raise ConnectionError(f"device {self.device_id}: no MQTT connection within {timeout:.0f}s")
        return self

    def publish(self, message: MessageKind, payload: bytes | object) -> mqtt.MQTTMessageInfo:
        data = payload if isinstance(payload, bytes) else schemas.encode(payload)
        return self.client.publish(topics.device_topic(self.kind, self.device_id, message), data, qos=1)

    def publish_raw(self, topic: str, payload: bytes) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=1)

    def close(self, graceful: bool = True) -> None:
        """Graceful: publish ``offline`` and disconnect. Not graceful: drop the socket so that the
        broker publishes the last will (what a power cut or network loss looks like)."""
        if graceful:
            self._publish_status(DeviceState.OFFLINE).wait_for_publish(5)
            self.client.disconnect()
            self.client.loop_stop()
        else:
            self.client.loop_stop()
            sock = self.client.socket()
            if sock is not None:
                sock.close()
