"""The alert loop on the real servers: gas readings through ingest and the worker to the alert
service (PostgreSQL store), its API, its channels (local webhook, robot and SMTP receivers) and
MQTT. "Nothing more arrived" is always shown with a sentinel sent through the same path."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from devices.client import DeviceClient
from models import schemas, topics
from models.alerts import lead_severity
from models.schemas import Alert, AlertState, GasReading, GasType, GasUnit
from models.topics import DeviceKind, MessageKind
from tests.integration.harness import kafka_records, poll, record_fault, retained

pytestmark = pytest.mark.integration
QUIET = {"interval_s": 3600}


def api(settings, token: str, method: str, path: str, body: dict | None = None) -> tuple[int, object]:
    req = urllib.request.Request(settings.alerts.api_url + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def record(settings, token: str, alert_id: str) -> dict | None:
    status, episodes = api(settings, token, "GET", f"/api/v1/alerts/{urllib.parse.quote(alert_id, safe='')}")
    return episodes[-1] if status == 200 else None


def act(settings, token, alert_id, action, **body) -> tuple[int, dict]:
    return api(settings, token, "POST", f"/api/v1/alerts/{urllib.parse.quote(alert_id, safe='')}/actions",
               {"action": action, **body})


def leak(settings, sensor: str, values=(30.0, 31.0), start: datetime | None = None,
         client: DeviceClient | None = None, first_seq: int = 0) -> DeviceClient:
    """Publish readings (10 s apart, in the recent past) as the sensor; returns its client."""
    client = client or DeviceClient(settings.mqtt, DeviceKind.GAS, sensor).start()
    t0 = start or datetime.now(UTC) - timedelta(minutes=2)
    for i, v in enumerate(values, first_seq):
        client.publish(MessageKind.GAS_READING, GasReading(
            sensor_id=sensor, gas=GasType.COMBUSTIBLE, value=v, unit=GasUnit.LEL,
            measured_at=t0 + timedelta(seconds=10 * i), seq=i)).wait_for_publish(10)
    return client


def send_transitions(settings, alerts: list[Alert]) -> None:
    """What a worker does: alert transitions on the alerts topic, keyed by alert id."""
    from aiokafka import AIOKafkaProducer

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all")
        await producer.start()
        try:
            for a in alerts:
                await producer.send_and_wait(topics.KAFKA_ALERTS, schemas.encode(a), key=a.alert_id.encode())
        finally:
            await producer.stop()

    asyncio.run(run())


def lead(entry: str, place: str, at: datetime, state: str = "firing") -> Alert:
    return Alert(alert_id=f"watch:{entry}:{place}:0000", type="watchlist-vehicle", severity=lead_severity(2),
                 state=AlertState(state), device_id=place, since=at, at=at,
                 summary=f"stolen-vehicle {entry}: exact plate match at {place}; verify",
                 details={"entry_id": entry, "match": "exact", "score": 1.0, "explanation": "exact"})


def test_escalates_on_schedule_and_an_api_acknowledgement_stops_it(pipeline, settings, registry, receivers,
                                                                   api_token):
    http, _ = receivers
    sensor = registry.add("gas", device_id=f"esc-{uuid.uuid4().hex[:6]}", district="xuhui", site="esc-site", **QUIET)
    alert_id = f"gas-level-1:{sensor}"
    client = leak(settings, sensor)
    try:
        poll(lambda: http.where("/hook/command", alert_id), 60, "the second escalation")
        status, acked = act(settings, api_token, alert_id, "ack", reason="crew dispatched")
        assert status == 200 and acked["status"] == "acknowledged" and acked["acknowledged_by"] == "duty-officer"
        # sentinel: another alarm fired after the ack, through the same path; its first escalation
        # comes 3 s later, after the acknowledged alarm's next reminder would have (4 s cycle)
        sentinel = registry.add("gas", device_id=f"esc-{uuid.uuid4().hex[:6]}", site="esc-site-2", **QUIET)
        leak(settings, sentinel).close()
        poll(lambda: http.where("/hook/supervisor", f"gas-level-1:{sentinel}"), 60, "the sentinel's escalation")
    finally:
        client.close()
    got = http.where("/hook/", alert_id)
    assert all(r.valid for r in got), "every webhook is signed"
    by_reason = {(r.path, r.body["reason"]) for r in got}
    assert {("/hook/duty", "new"), ("/hook/supervisor", "escalation"), ("/hook/command", "escalation")} <= by_reason
    at = {(r.path, r.body["reason"]): datetime.fromisoformat(r.body["at"]) for r in got}
    new_at = at[("/hook/duty", "new")]
    assert abs((at[("/hook/supervisor", "escalation")] - new_at).total_seconds() - 3) < 1.5
    assert abs((at[("/hook/command", "escalation")] - new_at).total_seconds() - 6) < 1.5
    acked_at = datetime.fromisoformat(acked["acknowledged_at"])
    assert all(datetime.fromisoformat(r.body["at"]) <= acked_at for r in got), "nothing after the acknowledgement"
    assert len({r.key for r in got}) == len(got), "no notification twice"
    steps = record(settings, api_token, alert_id)["steps"]
    assert [(s["change"], s["by"]) for s in steps] == [("opened", "system"), ("acknowledged", "duty-officer")]
    assert record(settings, api_token, alert_id)["place"]["district"] == "xuhui"


def test_every_channel_gets_exactly_the_expected_messages(pipeline, settings, registry, receivers, api_token):
    http, smtp = receivers
    sensor = registry.add("gas", device_id=f"chan-{uuid.uuid4().hex[:6]}", district="minhang", site="c-site", **QUIET)
    alert_id = f"gas-level-1:{sensor}"
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    client = leak(settings, sensor, (30.0, 31.0), t0)
    try:
        poll(lambda: len(http.where("/hook/channels", alert_id)) == 1, 60, "the first notification")
        status, refused = act(settings, api_token, alert_id, "confirm")
        assert status == 409 and "watch-list leads" in refused["error"]  # a gas alarm clears with the gas
        leak(settings, sensor, (4.0,) * 8, t0, client, first_seq=2)
        poll(lambda: record(settings, api_token, alert_id)["status"] == "cleared", 60, "the clear")
        sentinel = registry.add("gas", device_id=f"chan-{uuid.uuid4().hex[:6]}", **QUIET)
        leak(settings, sentinel).close()
        sid = f"gas-level-1:{sentinel}"
        poll(lambda: http.where("/hook/channels", sid) and http.where("/ding", sid) and http.where("/wecom", sid)
             and http.where("/feishu", sid) and smtp.where(sid), 60, "the sentinel on every channel")
    finally:
        client.close()
    for path in ("/hook/channels", "/ding", "/wecom", "/feishu"):
        got = http.where(path, alert_id)
        assert [r.body.get("reason") or ("new" if "NEW" in json.dumps(r.body) else "cleared") for r in got] == \
            ["new", "cleared"], path
        assert all(r.valid for r in got), f"{path}: signature and format as the service checks them"
    mails = smtp.where(alert_id)
    assert [to for to, _ in mails] == [["duty@example.org"], ["duty@example.org"]]
    assert [m["Subject"].split("]")[0] for _, m in mails] == ["[NEW", "[CLEARED"]
    hook = http.where("/hook/channels", alert_id)[0].body["alerts"][0]
    assert hook["details"]["value"] == 31.0 and hook["details"]["threshold"] == 25.0 and hook["district"] == "minhang"


def test_a_failing_receiver_is_retried_then_dead_lettered_without_delaying_others(pipeline, settings, registry,
                                                                                  receivers, postgres):
    http, _ = receivers
    sensor = registry.add("gas", device_id=f"broken-{uuid.uuid4().hex[:6]}", **QUIET)
    alert_id = f"gas-level-1:{sensor}"
    leak(settings, sensor).close()
    poll(lambda: http.where("/hook/duty", alert_id), 60, "the healthy receiver")

    def about_alarm(key: bytes, value: bytes) -> bool:
        return b"notification-failed" in value and \
            alert_id.encode() in schemas.decode_as(schemas.DeadLetter, value).payload

    letters = kafka_records(settings, topics.KAFKA_DEAD_LETTERS, about_alarm, timeout=60)
    dl = schemas.decode_as(schemas.DeadLetter, letters[0].value)
    assert dl.stage == "alerter" and dl.source == "notify/broken/webhook" and "HTTP 500" in dl.reason
    # given up after the first attempt and two retries (SAFECITY_ALERTS__RETRIES=2): the outbox says so
    from alerting.store import AlertStore

    store = AlertStore(postgres.url())
    try:
        rows = [r for r in store.outbox_rows() if r["receiver"] == "broken" and alert_id in r["payload"]
                and r["reason"] == "new"]
    finally:
        store.close()
    assert [(r["status"], r["attempts"]) for r in rows] == [("failed", 3)]


def test_two_workers_raising_one_alert_make_one_record_with_count_two(pipeline, settings, registry, receivers,
                                                                      api_token):
    http, _ = receivers
    place = registry.add("camera", device_id=f"lead-{uuid.uuid4().hex[:6]}", district="xuhui")
    t = datetime.now(UTC).replace(microsecond=0)
    a = lead("v-dup", place, t)
    send_transitions(settings, [a, msgspec_replace(a, at=t + timedelta(milliseconds=300)), a])  # the last: a replay
    poll(lambda: (record(settings, api_token, a.alert_id) or {}).get("count") == 2, 30, "count 2")
    sentinel = lead("v-sentinel", place, t)
    send_transitions(settings, [sentinel])
    poll(lambda: http.where("/hook/leads", sentinel.alert_id), 30, "the sentinel's notification")
    assert [r.body["reason"] for r in http.where("/hook/leads", a.alert_id)] == ["new"]


def msgspec_replace(alert: Alert, **changes) -> Alert:
    import msgspec

    return msgspec.structs.replace(alert, **changes)


def test_several_leads_at_one_checkpoint_keep_their_own_retained_state(pipeline, settings, registry, receivers,
                                                                       api_token):
    http, _ = receivers
    place = registry.add("camera", device_id=f"lead-{uuid.uuid4().hex[:6]}")
    t = datetime.now(UTC)
    first, second = lead("v-1", place, t), lead("v-2", place, t + timedelta(seconds=1))
    send_transitions(settings, [first, second])
    poll(lambda: len(retained(settings, f"{topics.PREFIX}/alerts/watchlist-vehicle/{place}/#")) == 2, 30,
         "both leads retained")
    status, body = act(settings, api_token, first.alert_id, "reject", reason="different vehicle")
    assert status == 200 and body["status"] == "rejected"
    def one_left():
        got = retained(settings, f"{topics.PREFIX}/alerts/watchlist-vehicle/{place}/#")
        return got if len(got) == 1 else None

    now = poll(one_left, 30, "the rejected lead's retained message emptied")
    (only,) = now.values()
    assert only["alert_id"] == second.alert_id and only["status"] == "firing"
    poll(lambda: [r.body["reason"] for r in http.where("/hook/leads", first.alert_id)] == ["new", "resolved"], 30,
         "the closing notification")
    # illegal steps are refused with a reason, nothing changes
    assert act(settings, api_token, first.alert_id, "reject", reason="again")[0] == 409
    assert act(settings, api_token, "no-such-alert", "ack")[0] == 404
    assert act(settings, api_token, second.alert_id, "reject")[0] == 409  # a reason is required
    assert act(settings, "not-a-token", second.alert_id, "ack")[0] == 401
    # a reason kept in the audit trail may not carry a person's number: refused, saying why
    status, body = act(settings, api_token, second.alert_id, "reject", reason="found 张伟 110105198001011234")
    assert status == 400 and "ID number" in body["error"] and "110105198001011234" not in body["error"]
    assert record(settings, api_token, second.alert_id)["status"] == "firing"


def test_the_cli_acts_through_the_api_and_refuses_illegal_steps(pipeline, settings, registry, stack_env, api_token):
    import subprocess
    import sys

    place = registry.add("camera", device_id=f"lead-{uuid.uuid4().hex[:6]}")
    a = lead("v-cli", place, datetime.now(UTC))
    send_transitions(settings, [a])
    poll(lambda: record(settings, api_token, a.alert_id), 30, "the lead in the store")
    env = stack_env | {"SAFECITY_ALERTS__TOKEN": api_token}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "safecity.cli", "alert", *args], env=env, capture_output=True,
                              text=True, timeout=60)

    assert cli("ack", a.alert_id, "--reason", "checking").returncode == 0
    again = cli("ack", a.alert_id)
    assert again.returncode == 1 and "acknowledged" in again.stderr
    assert cli("ack", "no-such-alert").returncode == 1
    assert cli("confirm", a.alert_id, "--reason", "verified at the gate").returncode == 0
    shown = json.loads(cli("show", a.alert_id, "--json").stdout)
    assert [s["change"] for s in shown[-1]["steps"]] == ["opened", "acknowledged", "confirmed"]
    listed = json.loads(cli("list", "--state", "confirmed", "--type", "watchlist-*", "--json").stdout)
    assert a.alert_id in [r["alert_id"] for r in listed]
    audit = kafka_records(settings, topics.KAFKA_AUDIT, lambda k, v: a.alert_id.encode() in v and b"confirm" in v)
    assert schemas.decode_as(schemas.AuditRecord, audit[0].value).by == "duty-officer"


def test_alerter_killed_mid_escalation_does_not_resend(pipeline, settings, registry, receivers):
    http, _ = receivers
    sensor = registry.add("gas", device_id=f"esc-{uuid.uuid4().hex[:6]}", site="kill-site", **QUIET)
    alert_id = f"gas-level-1:{sensor}"
    leak(settings, sensor).close()
    poll(lambda: http.where("/hook/supervisor", alert_id), 60, "the first escalation")
    pipeline["alerter"].kill()
    killed = time.monotonic()
    pipeline["alerter"].start(timeout=60)
    poll(lambda: http.where("/hook/command", alert_id), 90, "the second escalation, after the restart")
    recovered = time.monotonic() - killed
    sentinel = registry.add("gas", device_id=f"esc-{uuid.uuid4().hex[:6]}", site="kill-site-2", **QUIET)
    leak(settings, sentinel).close()
    poll(lambda: http.where("/hook/duty", f"gas-level-1:{sentinel}"), 90, "the sentinel")
    got = http.where("/hook/", alert_id)
    assert len({r.key for r in got}) == len(got), [r.key for r in got]
    assert [r.body["reason"] for r in got if r.path == "/hook/duty"][0] == "new"
    assert sum(r.body["reason"] == "new" for r in got) == 1
    assert sum(r.path == "/hook/supervisor" for r in got) == 1 and sum(r.path == "/hook/command" for r in got) == 1
    record_fault(fault="alert service SIGKILLed between two escalation steps", published=2, acknowledged="-",
                 in_kafka="-", alerts_expected=len({r.key for r in got}), notified=len(got),
                 duplicates=len(got) - len({r.key for r in got}),
                 recovery=f"next escalation sent {recovered:.0f} s after the kill (restart and rejoin included)")


def test_a_forged_alert_on_mqtt_changes_nothing(pipeline, settings, registry, receivers, api_token):
    """MQTT is an output: a message any client publishes on an alert topic is never read back."""
    import paho.mqtt.client as mqtt

    http, _ = receivers
    sensor = registry.add("gas", device_id=f"esc-{uuid.uuid4().hex[:6]}", site="forged-site", **QUIET)
    alert_id = f"gas-level-1:{sensor}"
    forged = json.dumps({"alert_id": alert_id, "type": "gas-level-1", "severity": "high", "state": "cleared",
                         "status": "resolved", "device_id": sensor, "since": "2099-01-01T00:00:00Z",
                         "at": "2099-01-01T00:00:00Z", "summary": "forged"}).encode()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"forger-{uuid.uuid4().hex[:6]}")
    client.connect(settings.mqtt.host, settings.mqtt.port)
    client.loop_start()
    for topic in (topics.alert_topic("gas-level-1", sensor, alert_id), f"{topics.PREFIX}/alerts/gas-level-1/{sensor}"):
        client.publish(topic, forged, qos=1, retain=True).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()
    leak(settings, sensor).close()
    poll(lambda: http.where("/hook/duty", alert_id), 60, "the real alarm, notified")
    assert record(settings, api_token, alert_id)["status"] == "firing"
