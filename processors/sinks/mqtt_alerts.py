"""Republishes alert transitions to MQTT ``safecity/v1/alerts/<type>/<device_id>`` (QoS 1,
retained: a wall display that connects late sees each alert's current state)."""

from __future__ import annotations

import asyncio
import logging
import os
import threading

from models import schemas, topics
from models.schemas import Alert
from models.settings import Settings
from safecity.mqtt import make_mqtt_client

logger = logging.getLogger(__name__)


class MqttAlertPublisher:
    def __init__(self, settings: Settings) -> None:
        client_id = f"safecity-alerts-{os.getpid()}"
        self.client = make_mqtt_client(settings.mqtt, client_id, clean_session=True)
        self.connected = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: self.connected.set() if not rc.is_failure else None
        self.client.on_disconnect = lambda c, u, f, rc, p: self.connected.clear()
        self.client.connect_async(settings.mqtt.host, settings.mqtt.port, keepalive=settings.mqtt.keepalive)
        self.client.loop_start()

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

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
