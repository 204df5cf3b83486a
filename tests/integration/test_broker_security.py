"""The production broker configuration on the real Mosquitto: the shipped ``deploy/mosquitto/mosquitto.conf``
with its paths and ports moved to a temporary directory and loopback, users and ACL written by
``safecity devices credentials`` from a registry, certificates by ``scripts/make-test-ca.sh``.

Every refusal is checked twice: by the broker's MQTT 5 reason code to the offender, and by observers
that receive a permitted sentinel sent after it through the same path, and never the refused message."""

from __future__ import annotations

import csv
import os
import queue
import ssl
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from deploy import services
from devices.client import DeviceClient
from models import topics
from models.settings import MqttSettings
from models.topics import DeviceKind, MessageKind

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NOT_AUTHORIZED = 135
BAD_CREDENTIALS = 134
SERVICE_PASSWORDS = {"MQTT_INGEST_PASSWORD": "ingest-" + uuid.uuid4().hex,
                     "MQTT_ALERTER_PASSWORD": "alerter-" + uuid.uuid4().hex,
                     "MQTT_CONSOLE_PASSWORD": "console-" + uuid.uuid4().hex,
                     "MQTT_DISPLAY_PASSWORD": "display-" + uuid.uuid4().hex}
REGISTRY = """devices:
  - {id: gas-1, kind: gas}
  - {id: gas-2, kind: gas}
  - {id: cam-1, kind: camera}
  - {id: hotel-1, kind: hotel}
"""


class ProductionMosquitto(services.Mosquitto):
    """The shipped production config, with /mosquitto/ moved under this service's directory and each
    listener on a free loopback port."""
    tls_port: int = 0

    def prepare(self) -> None:
        (self.dir / "data").mkdir(exist_ok=True)
        text = (ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
        text = text.replace("/mosquitto/", f"{self.dir}/")
        text = text.replace("listener 1883\n", f"listener {self.port} {self.host}\n")
        text = text.replace("listener 8883\n", f"listener {self.tls_port} {self.host}\n")
        assert f"listener {self.port} " in text and f"listener {self.tls_port} " in text
        (self.dir / "mosquitto.conf").write_text(text)
        services.grant_to("mosquitto", self.dir)


@pytest.fixture(scope="module")
def broker(services_dir):
    home = services_dir / "secure-broker"
    (home / "secure").mkdir(parents=True)
    registry = home / "registry.yaml"
    registry.write_text(REGISTRY)
    env = dict(os.environ, **SERVICE_PASSWORDS)
    made = subprocess.run([sys.executable, "-m", "safecity.cli", "devices", "credentials", "--out",
                           str(home / "secure" / "config"), "--registry", str(registry)],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    assert made.returncode == 0, made.stderr
    (issued,) = (home / "secure" / "config").glob("issued-*.csv")
    passwords = {row["user"]: row["password"] for row in csv.DictReader(issued.open())}
    assert set(passwords) == {"gas-1", "gas-2", "cam-1", "hotel-1"}  # the services' came from the environment
    ca = subprocess.run(["bash", str(ROOT / "scripts" / "make-test-ca.sh"), str(home / "secure" / "certs")],
                        capture_output=True, text=True)
    assert ca.returncode == 0, ca.stderr
    port, tls_port = services.free_ports(2)
    mosq = ProductionMosquitto("secure", home, "127.0.0.1", port)
    mosq.tls_port = tls_port
    mosq.start()
    passwords |= {"safecity-ingest": SERVICE_PASSWORDS["MQTT_INGEST_PASSWORD"],
                  "safecity-alerter": SERVICE_PASSWORDS["MQTT_ALERTER_PASSWORD"],
                  "safecity-console": SERVICE_PASSWORDS["MQTT_CONSOLE_PASSWORD"],
                  "safecity-display": SERVICE_PASSWORDS["MQTT_DISPLAY_PASSWORD"]}
    yield {"port": port, "tls_port": tls_port, "ca": home / "secure" / "certs" / "ca.crt", "passwords": passwords,
           "home": home}
    mosq.stop()


class Conn:
    """An MQTT 5 client that waits for each acknowledgement and keeps its reason code."""

    def __init__(self, broker: dict, user: str | None, *, client_id: str | None = None, tls: bool = True,
                 password: str | None = None, ca: Path | None = None) -> None:
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.acks: dict[int, int] = {}
        self.disconnects = 0
        self.connack = threading.Event()
        self.cond = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"t-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)
        if user is not None:
            self.client.username_pw_set(user, password if password is not None else broker["passwords"][user])
        if tls:
            self.client.tls_set(ca_certs=str(ca or broker["ca"]))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_ack
        self.client.on_subscribe = self._on_suback
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        self.port = broker["tls_port"] if tls else broker["port"]
        self.reason: mqtt.ReasonCode | None = None

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self.reason = reason_code
        self.connack.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self.cond:
            self.disconnects += 1

    def _on_ack(self, client, userdata, mid, reason_code, properties) -> None:
        with self.cond:
            self.acks[mid] = reason_code.value
            self.cond.notify_all()

    def _on_suback(self, client, userdata, mid, reason_codes, properties) -> None:
        with self.cond:
            self.acks[mid] = [r.value for r in reason_codes]
            self.cond.notify_all()

    def connect(self) -> int:
        """The CONNACK reason code (0: accepted)."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0
        self.client.connect("127.0.0.1", self.port, keepalive=30, properties=props)
        self.client.loop_start()
        assert self.connack.wait(10), "no CONNACK"
        return self.reason.value

    def _wait(self, mid: int):
        with self.cond:
            assert self.cond.wait_for(lambda: mid in self.acks, 10), "no acknowledgement"
            return self.acks[mid]

    def publish(self, topic: str, payload: bytes = b"{}") -> int:
        """The PUBACK reason code (0: accepted, 16: accepted, nobody subscribed; 135: refused)."""
        return self._wait(self.client.publish(topic, payload, qos=1).mid)

    def subscribe(self, topic_filter: str) -> list[int]:
        return self._wait(self.client.subscribe(topic_filter, qos=1)[1])

    def until(self, topic: str, timeout: float = 10) -> list[str]:
        """Topics received up to and including ``topic`` (the sentinel)."""
        got = []
        while True:
            m = self.messages.get(timeout=timeout)
            got.append(m.topic)
            if m.topic == topic:
                return got

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def conns(broker):
    made: list[Conn] = []

    def make(user, **kw) -> Conn:
        made.append(Conn(broker, user, **kw))
        return made[-1]

    yield make
    for c in made:
        c.close()


def gas(device: str) -> str:
    return topics.device_topic(DeviceKind.GAS, device, MessageKind.GAS_READING)


def test_a_device_publishes_only_its_own_kinds_topics_under_its_own_id(conns):
    ingest, display, alerter = conns("safecity-ingest", tls=False), conns("safecity-display", tls=False), \
        conns("safecity-alerter", tls=False)
    assert (ingest.connect(), display.connect(), alerter.connect()) == (0, 0, 0)
    assert [ingest.subscribe(f) for f in topics.INGEST_SUBSCRIPTIONS] == [[1]] * 3
    assert display.subscribe(f"{topics.PREFIX}/alerts/#") == [1] and display.subscribe(f"{topics.PREFIX}/system/#") == [1]
    device = conns("gas-1")
    assert device.connect() == 0
    refused = {
        "another device's topic": gas("gas-2"),
        "another kind's message": f"{topics.PREFIX}/hotel/gas-1/registration",
        "another kind's namespace": f"{topics.PREFIX}/camera/gas-1/plate-read",
        "a forged alert": f"{topics.PREFIX}/alerts/gas-level-2/gas-1/forged",
        "a system topic": f"{topics.PREFIX}/system/ingest/stats",
        "outside the namespace": "elsewhere/anything",
    }
    assert {what: device.publish(topic) for what, topic in refused.items()} == {what: NOT_AUTHORIZED for what in refused}
    assert device.publish(gas("gas-1")) == 0  # the sentinel, after the refused ones, through the same path
    assert ingest.until(gas("gas-1")) == [gas("gas-1")]
    legit = f"{topics.PREFIX}/alerts/gas-level-2/gas-1/real"
    console = conns("safecity-console", tls=False)
    assert console.connect() == 0 and console.subscribe(f"{topics.PREFIX}/alerts/#") == [1]
    assert console.publish(f"{topics.PREFIX}/alerts/gas-level-2/gas-1/from-console") == NOT_AUTHORIZED
    assert alerter.publish(legit) == 0
    assert display.until(legit) == [legit]  # the forged alert never reached a display
    assert console.until(legit) == [legit]  # nor the console, which only reads alert state


def test_a_device_reads_nothing(conns):
    ingest, device, camera, other = conns("safecity-ingest", tls=False), conns("gas-1"), conns("cam-1"), conns("gas-2")
    assert (ingest.connect(), device.connect(), camera.connect(), other.connect()) == (0, 0, 0, 0)
    assert [ingest.subscribe(f) for f in topics.INGEST_SUBSCRIPTIONS] == [[1]] * 3
    # Mosquitto may grant a wildcard subscription and refuse each message at delivery: what counts is
    # that nothing is delivered
    for f in ("#", f"{topics.PREFIX}/#", f"{topics.PREFIX}/alerts/#", gas("gas-2"), gas("gas-1")):
        device.subscribe(f)
    plate = topics.device_topic(DeviceKind.CAMERA, "cam-1", MessageKind.PLATE_READ)
    assert camera.publish(plate) == 0 and other.publish(gas("gas-2")) == 0
    assert ingest.until(gas("gas-2")) == [plate, gas("gas-2")]
    # the sentinel on the device's own connection: the broker writes what it queued for the device
    # (the two messages above, had they been allowed) before the acknowledgement of a later publish
    assert device.publish(gas("gas-1")) == 0
    assert device.messages.empty()


def test_no_client_takes_over_another_session_with_its_client_id(conns, broker):
    ingest = conns("safecity-ingest", tls=False, client_id="safecity-ingest-gas")
    display = conns("safecity-display", tls=False)
    victim = conns("gas-2", client_id="gas-2")
    assert (ingest.connect(), display.connect(), victim.connect()) == (0, 0, 0)
    assert ingest.subscribe(f"{topics.PREFIX}/gas/#") == [1] and display.subscribe(f"{topics.PREFIX}/system/#") == [1]
    for stolen in ("safecity-ingest-gas", "gas-2"):  # the device listener replaces it with the user name
        assert conns("gas-1", client_id=stolen).connect() == 0
    stats = f"{topics.PREFIX}/system/ingest/stats"
    assert ingest.publish(stats) == 0 and display.until(stats) == [stats]
    assert victim.publish(gas("gas-2")) == 0 and ingest.until(gas("gas-2")) == [gas("gas-2")]
    assert (ingest.disconnects, victim.disconnects) == (0, 0)
    # the control: the services' listener does not bind client ids (it is never published), and there a
    # stolen id does knock the victim off, which these checks see
    assert conns("gas-1", tls=False, client_id="gas-2").connect() == 0
    assert victim.publish(gas("gas-2")) == 0 and ingest.until(gas("gas-2")) == [gas("gas-2")]
    assert victim.disconnects >= 1


def test_only_known_users_with_their_password_over_verified_tls(conns, broker, tmp_path):
    refused = (BAD_CREDENTIALS, NOT_AUTHORIZED)  # Mosquitto 2.0 answers 135 to a wrong password
    assert conns("gas-1", password="wrong").connect() in refused
    assert conns("nobody", password="x").connect() in refused
    assert conns(None).connect() in refused  # anonymous
    assert conns("gas-1").connect() == 0
    other = tmp_path / "other-ca"
    subprocess.run(["bash", str(ROOT / "scripts" / "make-test-ca.sh"), str(other)], check=True, capture_output=True)
    with pytest.raises(ssl.SSLCertVerificationError):
        conns("gas-1", ca=other / "ca.crt").connect()
    plain, connacks = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5), []
    plain.username_pw_set("gas-1", broker["passwords"]["gas-1"])
    plain.on_connect = lambda c, u, f, rc, p: connacks.append(rc)
    plain.connect("127.0.0.1", broker["tls_port"], keepalive=5)
    results = []  # plaintext on the TLS port: dropped without a CONNACK
    while len(results) < 25 and mqtt.MQTT_ERR_CONN_LOST not in results:
        results.append(plain.loop(0.2))
    assert connacks == [] and mqtt.MQTT_ERR_CONN_LOST in results


def test_the_projects_device_client_over_tls_from_settings(conns, broker):
    """The settings path devices and services use: SAFECITY_MQTT__TLS_CA_FILE and credentials."""
    ingest = conns("safecity-ingest", tls=False)
    assert ingest.connect() == 0 and ingest.subscribe(f"{topics.PREFIX}/gas/#") == [1]
    settings = MqttSettings(host="127.0.0.1", port=broker["tls_port"], username="gas-1",
                            password=broker["passwords"]["gas-1"], tls_ca_file=broker["ca"])
    device = DeviceClient(settings, DeviceKind.GAS, "gas-1").start()
    try:
        assert device.connected.wait(10)
        status = topics.device_topic(DeviceKind.GAS, "gas-1", MessageKind.STATUS)
        assert status in ingest.until(status)
    finally:
        device.close()
