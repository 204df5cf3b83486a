"""The benchmarks' load publisher: MQTT 3.1.1 QoS 1 PUBLISH packets written straight to a socket.

The field devices a benchmark stands in for do not run on the pipeline's machine, yet the load
generator must. paho-mqtt costs about 0.09 ms of CPU per QoS 1 message here (its packet building,
locks and network thread, and the PUBACK callback), as much as the worker's whole processing of a
reading: at 4,500 readings/s the generator took 0.4 of the two cores from the pipeline it measured.
This publisher builds each packet with one join, sends a batch with one ``sendall`` and counts the
PUBACKs in bulk (a few microseconds per message). The protocol is the same as a device's (QoS 1,
acknowledged by the broker); the plain-MQTT ceiling the benchmarks compare with publishes with it too,
so the ratio is between the same loads.

It only publishes: the broker sends it nothing but CONNACK, PUBACK and PINGRESP.
"""

from __future__ import annotations

import select
import socket
import struct
import time

CONNECT, CONNACK, PUBLISH_QOS1, PUBACK, PINGRESP = 0x10, 0x20, 0x32, 0x40, 0xD0
PACKET_IDS = 65535  # 1..65535; an id comes back only after 65,534 others, far beyond any window here


def remaining_length(n: int) -> bytes:
    """MQTT's variable-length encoding of a packet's remaining length."""
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def utf8(s: bytes) -> bytes:
    return struct.pack("!H", len(s)) + s


def publish_packet(topic: bytes, payload: bytes, packet_id: int) -> bytes:
    body_len = 2 + len(topic) + 2 + len(payload)
    return b"".join((bytes((PUBLISH_QOS1,)), remaining_length(body_len), utf8(topic), struct.pack("!H", packet_id),
                     payload))


class QoS1Publisher:
    """One MQTT connection that publishes at QoS 1; ``acked`` counts the broker's PUBACKs."""

    def __init__(self, host: str, port: int, client_id: str, keepalive_s: int = 60) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        variable = utf8(b"MQTT") + bytes((4, 0x02)) + struct.pack("!H", keepalive_s)  # 3.1.1, clean session
        body = variable + utf8(client_id.encode())
        self.sock.sendall(bytes((CONNECT,)) + remaining_length(len(body)) + body)
        connack = self._read_exactly(4)
        if connack[0] != CONNACK or connack[3] != 0:
            raise ConnectionError(f"the broker refused the connection: {connack!r}")
        self.sock.settimeout(None)  # blocking: a socket with a timeout waits even on MSG_DONTWAIT
        self.keepalive_s, self.last_sent = keepalive_s, time.monotonic()
        self.next_id, self.sent, self.acked = 1, 0, 0
        self.pending = b""  # the start of a packet from the broker not yet read whole

    def _read_exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the broker closed the connection")
            data += chunk
        return data

    def publish(self, messages: list[tuple[bytes, bytes]]) -> None:
        """Send (topic, payload) pairs in one write; they count as sent once written."""
        packets = []
        next_id = self.next_id
        for topic, payload in messages:
            packets.append(publish_packet(topic, payload, next_id))
            next_id = next_id % PACKET_IDS + 1
        self.next_id = next_id
        self.sock.sendall(b"".join(packets))
        self.sent += len(messages)
        self.last_sent = time.monotonic()

    def poll(self) -> int:
        """Read what the broker has sent without waiting; count its PUBACKs. Returns ``acked``."""
        while True:
            try:
                data = self.sock.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            if not data:
                raise ConnectionError("the broker closed the connection")
            self._parse(self.pending + data)
        if self.keepalive_s and time.monotonic() - self.last_sent > self.keepalive_s / 2:
            self.sock.sendall(b"\xc0\x00")  # PINGREQ: an idle wait for acknowledgements stays connected
            self.last_sent = time.monotonic()
        return self.acked

    def _parse(self, data: bytes) -> None:
        i, n = 0, len(data)
        while i < n:
            if data[i] == PUBACK and i + 4 <= n and data[i + 1] == 2:  # the usual case, without the general decoding
                self.acked += 1
                i += 4
                continue
            length, shift, j = 0, 0, i + 1
            while j < n:
                length |= (data[j] & 0x7F) << shift
                shift += 7
                j += 1
                if not data[j - 1] & 0x80:
                    break
            else:
                break  # the length itself is not all here yet
            if j + length > n:
                break
            kind = data[i] & 0xF0
            if kind == PUBACK:
                self.acked += 1
            elif kind != PINGRESP:
                raise ConnectionError(f"unexpected packet from the broker: type {kind >> 4}")
            i = j + length
        self.pending = data[i:]

    def publish_all(self, topic: bytes, payloads: list[bytes], window: int = 1000, chunk: int = 200) -> None:
        """Publish every payload to ``topic`` as fast as the broker acknowledges, at most ``window``
        unacknowledged, in writes of up to ``chunk`` messages."""
        i = 0
        while i < len(payloads):
            room = min(chunk, window - (self.sent - self.poll()), len(payloads) - i)
            if room <= 0:
                select.select([self.sock], [], [], 1.0)  # until acknowledgements arrive
                continue
            self.publish([(topic, p) for p in payloads[i:i + room]])
            i += room

    def wait_acked(self, timeout_s: float) -> bool:
        """Wait until every message sent is acknowledged (or ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while self.poll() < self.sent and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.acked >= self.sent

    def close(self) -> None:
        try:
            self.sock.sendall(b"\xe0\x00")  # DISCONNECT
        except OSError:
            pass
        self.sock.close()
