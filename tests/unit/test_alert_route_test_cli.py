"""`safecity alert route-test`: the contract (JSON lines in time order, exit 2 naming the line)."""

import json

from typer.testing import CliRunner

from safecity.cli import app

POLICY = """
receivers:
  duty: {webhook: "http://127.0.0.1:9/x"}
  sup: {email: [sup@example.org]}
routes:
  - match: {type: "gas-*", district: xuhui}
    receivers: [duty]
    remind_every: 15m
    escalate: [{after: 10m, receivers: [sup]}]
  - match: {type: "watchlist-*"}
    receivers: [duty]
group_window: 2m
"""
REGISTRY = """
devices:
  - {id: gas-001, kind: gas, site: bldg-1, district: xuhui}
  - {id: gas-002, kind: gas, site: bldg-1, district: xuhui}
  - {id: gas-003, kind: gas, site: bldg-1, district: xuhui}
  - {id: cp-001, kind: camera, district: xuhui}
"""


def transition(device, state="firing", at="08:00:00", since="08:00:00", type_="gas-level-1", severity="high"):
    return json.dumps({"alert_id": f"{type_}:{device}", "type": type_, "severity": severity, "state": state,
                       "device_id": device, "since": f"2026-11-29T{since}Z", "at": f"2026-11-29T{at}Z",
                       "summary": "s", "details": {}})


def run(tmp_path, lines, *extra):
    (tmp_path / "p.yaml").write_text(POLICY)
    (tmp_path / "r.yaml").write_text(REGISTRY)
    (tmp_path / "e.jsonl").write_text("\n".join(lines) + "\n")
    return CliRunner().invoke(app, ["alert", "route-test", str(tmp_path / "e.jsonl"), "--policy",
                                    str(tmp_path / "p.yaml"), "--registry", str(tmp_path / "r.yaml"), *extra])


def test_a_timeline_gives_notifications_in_time_order(tmp_path):
    out = run(tmp_path, [
        transition("gas-001"),
        transition("gas-002", at="08:00:30", since="08:00:30"),
        transition("gas-003", at="08:01:00", since="08:01:00"),
        json.dumps({"action": "ack", "alert_id": "gas-level-1:gas-002", "at": "2026-11-29T08:05:00Z", "by": "li"}),
        transition("gas-001", state="cleared", at="08:20:00"),
        transition("cp-001", type_="watchlist-vehicle", at="08:21:00", since="08:21:00"),
        json.dumps({"action": "reject", "alert_id": "watchlist-vehicle:cp-001", "at": "2026-11-29T08:22:00Z",
                    "by": "li", "reason": "other car"}),
    ], "--until", "2026-11-29T08:30:00Z")
    assert out.exit_code == 0, out.output
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    assert lines == [
        {"at": "2026-11-29T08:00:00Z", "alert_id": "gas-level-1:gas-001", "receiver": "duty", "reason": "new"},
        {"at": "2026-11-29T08:02:00Z", "alert_ids": ["gas-level-1:gas-002", "gas-level-1:gas-003"],
         "receiver": "duty", "reason": "group"},
        {"at": "2026-11-29T08:10:00Z", "alert_id": "gas-level-1:gas-001", "receiver": "sup", "reason": "escalation"},
        {"at": "2026-11-29T08:12:00Z", "alert_id": "gas-level-1:gas-003", "receiver": "sup", "reason": "escalation"},
        {"at": "2026-11-29T08:15:00Z", "alert_id": "gas-level-1:gas-001", "receiver": "duty", "reason": "reminder"},
        {"at": "2026-11-29T08:17:00Z", "alert_id": "gas-level-1:gas-003", "receiver": "duty", "reason": "reminder"},
        {"at": "2026-11-29T08:20:00Z", "alert_id": "gas-level-1:gas-001", "receiver": "duty", "reason": "cleared"},
        {"at": "2026-11-29T08:20:00Z", "alert_id": "gas-level-1:gas-001", "receiver": "sup", "reason": "cleared"},
        {"at": "2026-11-29T08:21:00Z", "alert_id": "watchlist-vehicle:cp-001", "receiver": "duty", "reason": "new"},
        {"at": "2026-11-29T08:22:00Z", "alert_id": "watchlist-vehicle:cp-001", "receiver": "duty",
         "reason": "resolved"},
    ]  # gas-002, acknowledged at 08:05, is neither escalated nor reminded; gas-003's next reminder is at 08:32


def test_a_replayed_transition_is_not_notified_twice(tmp_path):
    out = run(tmp_path, [transition("gas-001"), transition("gas-001")])
    assert out.exit_code == 0 and len(out.stdout.splitlines()) == 1


def test_malformed_lines_and_policies_exit_2_with_the_line(tmp_path):
    out = run(tmp_path, [transition("gas-001"), '{"action": "ack"}'])
    assert out.exit_code == 2 and "line 2" in out.output
    out = run(tmp_path, [transition("gas-001"), "not json"])
    assert out.exit_code == 2 and "line 2" in out.output
    (tmp_path / "bad.yaml").write_text("receivers:\n  a: {webhook: ftp://x}\n")
    out = CliRunner().invoke(app, ["alert", "route-test", str(tmp_path / "e.jsonl"), "--policy",
                                   str(tmp_path / "bad.yaml")])
    assert out.exit_code == 2 and "line 2" in out.output


def test_a_refused_action_is_reported_and_changes_nothing(tmp_path):
    out = run(tmp_path, [transition("gas-001"), json.dumps(
        {"action": "confirm", "alert_id": "gas-level-1:gas-001", "at": "2026-11-29T08:01:00Z", "by": "li"})])
    assert out.exit_code == 0 and "line 2: refused: confirm applies to watch-list leads" in out.output
