"""Live alerts for the browsers: the alert service's retained state topics on MQTT, fanned out to
every open board as server-sent events.

An event only says which alert changed (its id and version); the board then reads the record
through the API, so the board shows the store's truth and a message forged on MQTT shows nothing.
A browser that reads too slowly is dropped (its queue is bounded) and reconnects; nothing here
ever holds up the alert service, which publishes to the broker, not to this process."""

from __future__ import annotations

import asyncio
import json
import logging
import threading

from alerting.mqtt_state import client_id
from models import topics
from models.settings import MqttSettings
from safecity.mqtt import make_mqtt_client

logger = logging.getLogger(__name__)
QUEUE = 256


def change_of(payload: bytes) -> dict | None:
    """What a board needs to hear of an alert-state message: its id and version (None: the emptied
    retained message of a closed alert, or not an alert record)."""
    if not payload:
        return None
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("alert_id"), str):
        return None
    version = body.get("version")
    return {"alert_id": body["alert_id"][:200], "version": version if isinstance(version, int) else 0}


class AlertFeed:
    def __init__(self, settings: MqttSettings) -> None:
        self.settings = settings
        self.listeners: set[asyncio.Queue] = set()
        self.connected = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.client = make_mqtt_client(settings, client_id("console"), clean_session=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.client.on_message = self._on_message

    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.client.connect_async(self.settings.host, self.settings.port, keepalive=self.settings.keepalive)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, rc, props) -> None:
        if rc.is_failure:
            logger.error("MQTT connect refused (%s)", rc)
            return
        client.subscribe(topics.ALERTS_SUBSCRIPTION, qos=1)
        self.connected.set()
        self._emit({"resync": True})  # missed changes while away: every board reloads its list

    def _on_message(self, client, userdata, msg) -> None:
        change = change_of(msg.payload)
        if change is not None:
            self._emit(change)

    def _emit(self, event: dict) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._fan_out, event)

    def _fan_out(self, event: dict) -> None:
        for q in list(self.listeners):
            try:
                q.put_nowait(event)
            except asyncio.QueueFull:  # a browser that does not keep up: dropped, it reconnects and reloads
                self.listeners.discard(q)

    def listen(self) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue(QUEUE)
        self.listeners.add(q)
        return q

    def listening(self, q: asyncio.Queue) -> bool:
        return q in self.listeners

    def unlisten(self, q: asyncio.Queue) -> None:
        self.listeners.discard(q)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
