"""Alert state on MQTT for command-center clients and walls: one retained topic per alert.

``safecity/v1/alerts/<type>/<device>/<alert id>`` holds the alert's current record (JSON) while it
is open, acknowledgements and assignments included. When it closes, the closing record is
published once (not retained), then the retained message is emptied (a zero-length retained
publish), so a client that connects late sees exactly the open alerts. MQTT is an output only: the
pipeline never reads it back.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import uuid

from alerting.channels import message_record
from alerting.lifecycle import AlertRecord
from models import topics
from models.settings import MqttSettings
from safecity.mqtt import make_mqtt_client

logger = logging.getLogger(__name__)


def client_id(role: str) -> str:
    """Unique per process, also across containers where every PID is 1."""
    return f"safecity-{role}-{socket.gethostname()[:20]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class AlertStatePublisher:
    def __init__(self, settings: MqttSettings, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self.connected = threading.Event()
        self.client = make_mqtt_client(settings, client_id("alerter"), clean_session=True)
        self.client.on_connect = lambda c, u, f, rc, p: (self.connected.set() if not rc.is_failure else
                                                          logger.error("MQTT connect refused (%s)", rc))
        self.client.on_disconnect = lambda c, u, f, rc, p: self.connected.clear()
        self.client.connect_async(settings.host, settings.port, keepalive=settings.keepalive)
        self.client.loop_start()

    async def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """Publish with QoS 1 and wait for the broker's PUBACK; raise if it does not come."""
        loop = asyncio.get_running_loop()
        if not self.connected.is_set() and not await loop.run_in_executor(None, self.connected.wait, self.timeout):
            raise ConnectionError("not connected to the MQTT broker")
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        await loop.run_in_executor(None, info.wait_for_publish, self.timeout)
        if not info.is_published():
            raise TimeoutError(f"no PUBACK for {topic}")

    async def publish_state(self, record: AlertRecord) -> None:
        topic = topics.alert_topic(record.type, record.device_id, record.alert_id)
        body = message_record(record)
        if record.open:
            await self.publish(topic, body, retain=True)
        else:
            await self.publish(topic, body, retain=False)
            await self.publish(topic, b"", retain=True)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
