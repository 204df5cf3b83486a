"""Channel formats and signatures, checked against the services' documented algorithms."""

import base64
import hashlib
import hmac
import urllib.parse
from datetime import UTC, datetime

from alerting import channels
from alerting.lifecycle import Place, on_transition
from alerting.routing import Notification, Reason
from tests.unit.test_alert_lifecycle import transition

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def note(reason=Reason.NEW, n=1):
    records = tuple(on_transition(None, transition(device=f"gas-00{i}"), Place(district="xuhui")).record
                    for i in range(n))
    return Notification(T0, "duty", reason, records, f"k-{reason}")


def test_the_message_carries_evidence_and_place_but_is_a_lead_not_an_order():
    msg = channels.message(note())
    assert msg["reason"] == "new" and msg["key"] == "k-new"
    assert msg["alerts"][0]["details"] == {"value": 30.0} and msg["alerts"][0]["district"] == "xuhui"
    assert "verify" in msg["note"]
    assert channels.title(msg) == "[NEW] HIGH gas-level-1 at gas-000"
    assert "(+2 more)" in channels.title(channels.message(note(Reason.GROUP, 3)))


def test_webhook_signature_is_hmac_sha256_of_the_body():
    body = b'{"a": 1}'
    assert channels.sign_body("s", body) == "sha256=" + hmac.new(b"s", body, hashlib.sha256).hexdigest()


def test_dingtalk_url_signature():
    url = channels.dingtalk_url("https://oapi.dingtalk.com/robot/send?access_token=t", "SECx", 1700000000000)
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    expected = base64.b64encode(hmac.new(b"SECx", b"1700000000000\nSECx", hashlib.sha256).digest()).decode()
    assert q["access_token"] == ["t"] and q["timestamp"] == ["1700000000000"] and q["sign"] == [expected]
    assert channels.dingtalk_url("https://x/send?access_token=t", "", 1) == "https://x/send?access_token=t"


def test_feishu_signature_and_robot_bodies():
    body = channels.robot_body("feishu", channels.message(note()), "fs", 1700000000)
    expected = base64.b64encode(hmac.new(b"1700000000\nfs", b"", hashlib.sha256).digest()).decode()
    assert body["timestamp"] == "1700000000" and body["sign"] == expected and body["msg_type"] == "text"
    assert "gas-level-1:gas-000" in body["content"]["text"]
    ding = channels.robot_body("dingtalk", channels.message(note()))
    assert ding["msgtype"] == "markdown" and ding["markdown"]["title"].startswith("[NEW]")
    wecom = channels.robot_body("wecom", channels.message(note()))
    assert wecom["msgtype"] == "markdown" and "gas-level-1" in wecom["markdown"]["content"]


def test_robots_report_failure_in_the_body():
    assert channels.robot_ok("dingtalk", {"errcode": 0, "errmsg": "ok"})
    assert not channels.robot_ok("dingtalk", {"errcode": 310000, "errmsg": "sign not match"})
    assert channels.robot_ok("feishu", {"code": 0}) and channels.robot_ok("feishu", {"StatusCode": 0})
    assert not channels.robot_ok("feishu", {"code": 19021}) and not channels.robot_ok("wecom", "nope")


def test_mqtt_state_has_no_free_text_comments():
    import json

    from alerting.lifecycle import ActionKind, AlertAction, apply_action

    rec = on_transition(None, transition(), Place()).record
    rec = apply_action(rec, AlertAction(action=ActionKind.ACK, alert_id=rec.alert_id, by="li", at=T0,
                                        reason="called 张伟 on 13800000000")).record
    body = json.loads(channels.message_record(rec))
    assert body["status"] == "acknowledged" and body["state"] == "firing" and body["acknowledged_by"] == "li"
    assert "13800000000" not in json.dumps(body, ensure_ascii=False)
