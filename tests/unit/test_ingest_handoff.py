"""The bridge's hand-off from paho's network thread to the asyncio loop: messages are queued from
the thread and the loop is woken once for whatever queued since it last looked. A wake-up lost in
that race would leave a message queued while the loop waits: the last message of a burst would sit
until the next burst (for ever, if none comes)."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import paho.mqtt.client as mqtt

from ingest.bridge import Bridge
from models import topics
from models.settings import Settings


def message(i: int) -> mqtt.MQTTMessage:
    msg = mqtt.MQTTMessage(mid=i, topic=f"{topics.PREFIX}/gas/gas-{i % 50}/reading".encode())
    msg.payload = b"{}"  # a dead letter at validation: the hand-off does not care
    return msg


def test_every_message_queued_from_another_thread_wakes_the_loop_or_is_taken_with_others():
    bridge = Bridge(Settings())
    lane = next(lane for lane in bridge.lanes if lane.kind is topics.DeviceKind.GAS)
    total, rng = 20_000, random.Random(7)
    wake_ups = 0

    def network_thread() -> None:  # bursts with pauses of up to a millisecond, as a broker delivers
        for i in range(total):
            lane._on_message(None, None, message(i))
            if rng.random() < 0.02:
                time.sleep(rng.random() / 1000)

    async def loop_side() -> list[int]:
        nonlocal wake_ups
        bridge.loop = asyncio.get_running_loop()
        thread = threading.Thread(target=network_thread)
        thread.start()
        taken: list[int] = []
        while len(taken) < total:
            item = bridge._next()
            if item is None:  # the producer loop's own wait: a lost wake-up hangs here, with messages queued
                await asyncio.wait_for(bridge._wait(), 10)
                wake_ups += 1
            else:
                taken.append(item[1].mid)
        thread.join()
        return taken

    taken = asyncio.run(loop_side())
    assert taken == list(range(total))  # all of them, in order, none twice
    assert not lane.pending
    assert 0 < wake_ups < total  # woken for bursts, not for each message
