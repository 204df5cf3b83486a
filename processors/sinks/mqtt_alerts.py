"""Republishes alert transitions to MQTT ``safecity/v1/alerts/<type>/<device_id>`` (QoS 1,
retained: a wall display that connects late sees each alert's current state).

The retained messages are also the durable record of what was notified: the publisher subscribes
to them, so after a worker crash a replayed transition that the broker already holds is
recognised and not published twice (the Faust table alone could lag behind the broker by up to a
commit interval).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading


from models import schemas, topics
from models.schemas import Alert
from models.settings import Settings
from processors.rules import notify
from safecity.mqtt import make_mqtt_client

logger = logging.getLogger(__name__)


class MqttAlertPublisher:
    def __init__(self, settings: Settings) -> None:
        client_id = f"safecity-alerts-{os.getpid()}"
        self.sentinel = f"{topics.PREFIX}/system/alert-publisher/{client_id}"
        self.published: dict[str, str] = {}  # alert id -> position of the transition the broker holds
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.loaded = threading.Event()  # retained alerts received
        self.client = make_mqtt_client(settings.mqtt, client_id, clean_session=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda c, u, f, rc, p: self.connected.clear()
        self.client.on_message = self._on_message
        self.client.connect_async(settings.mqtt.host, settings.mqtt.port, keepalive=settings.mqtt.keepalive)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            logger.error("alert publisher: MQTT connect refused (%s)", reason_code)
            return
        # Retained alerts arrive right after this SUBACK, before the sentinel published below.
        client.subscribe([(topics.ALERTS_SUBSCRIPTION, 1), (self.sentinel, 1)])
        client.publish(self.sentinel, b"loaded", qos=1)
        self.connected.set()

    def _on_message(self, client, userdata, msg) -> None:
        if msg.topic == self.sentinel:
            self.loaded.set()
            return
        try:
            alert = schemas.decode_as(Alert, msg.payload)
        except schemas.SchemaError:
            return
        position = notify.position(alert)
        with self.lock:
            if notify.should_notify(self.published.get(alert.alert_id), alert):
                self.published[alert.alert_id] = position

    async def already_published(self, alert: Alert, timeout: float = 30.0) -> bool:
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, self.loaded.wait, timeout):
            raise ConnectionError("alert publisher could not read the retained alerts")
        with self.lock:
            return not notify.should_notify(self.published.get(alert.alert_id), alert)

    async def publish(self, alert: Alert, timeout: float = 30.0) -> None:
        """Publish and wait for the broker's PUBACK (raise if it does not come: the agent then
        restarts and the alert is retried, since its offset was not committed)."""
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, self.connected.wait, timeout):
            raise ConnectionError("alert publisher is not connected to the MQTT broker")
        info = self.client.publish(topics.alert_topic(alert.type, alert.device_id), schemas.encode(alert),
                                   qos=1, retain=True)
        await loop.run_in_executor(None, info.wait_for_publish, timeout)
        if not info.is_published():
            raise TimeoutError(f"alert {alert.alert_id} not acknowledged by the MQTT broker")
        with self.lock:
            self.published[alert.alert_id] = max(self.published.get(alert.alert_id, ""), notify.position(alert))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


