"""Routing, reminders, escalation, silences and grouping, with an injected clock; the policy file's
errors name their line."""

from datetime import UTC, datetime, timedelta

import pytest

from alerting.lifecycle import ActionKind, AlertAction, Place, apply_action, on_transition
from alerting.policy import PolicyError, parse_policy
from alerting.routing import Router
from tests.unit.test_alert_lifecycle import transition

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
M = timedelta(minutes=1)

POLICY = """
receivers:
  duty-xuhui: {webhook: "http://127.0.0.1:1/hook", email: ["duty@example.org"]}
  supervisor-xuhui: {email: [sup@example.org]}
  command-center: {dingtalk: {url: "http://127.0.0.1:1/robot", secret: SECabc}, mqtt: true}
  maintenance: {wecom: "http://127.0.0.1:1/wecom"}
routes:
  - match: {type: "gas-*", severity: [critical, high], district: xuhui}
    receivers: [duty-xuhui]
    remind_every: 15m
    escalate:
      - {after: 10m, receivers: [supervisor-xuhui]}
      - {after: 30m, receivers: [command-center]}
  - match: {route: maintenance}
    receivers: [maintenance]
  - match: {type: "watchlist-*"}
    receivers: [command-center]
silences:
  - {match: {device: gas-007}, from: 2026-11-29T08:00:00Z, until: 2026-11-29T09:00:00Z, by: li, reason: maintenance}
group_window: 2m
"""


class Harness:
    """Lifecycle + router, fed like the service feeds them."""

    def __init__(self, policy=POLICY):
        self.router = Router(parse_policy(policy))
        self.records = {}
        self.sent = []

    def at(self, t):
        self.sent += self.router.advance(t)

    def fire(self, t, place=Place(district="xuhui", site="bldg-1"), **kw):
        self.at(t)
        a = transition(at=t, **kw)
        out = on_transition(self.records.get(a.alert_id), a, place)
        if out.change:
            self.records[a.alert_id] = out.record
            self.sent += self.router.on_change(out.record, out.change, t)
        return a.alert_id

    def act(self, t, kind, alert_id, **kw):
        self.at(t)
        out = apply_action(self.records[alert_id], AlertAction(action=ActionKind(kind), alert_id=alert_id, by="li",
                                                               at=t, **kw))
        self.records[alert_id] = out.record
        self.sent += self.router.on_change(out.record, out.change, t)

    def lines(self):
        return [(int((n.at - T0) / M), n.receiver, n.reason.value, n.alert_ids) for n in self.sent]


def test_first_match_wins_and_an_unrouted_or_info_alert_is_recorded_only():
    h = Harness()
    h.fire(T0, alert_type="gas-level-1")
    h.fire(T0, alert_type="gas-level-1", device="gas-002", place=Place(district="minhang"))  # no route
    h.fire(T0, alert_type="low-battery", device="gas-003")
    assert h.lines() == [(0, "duty-xuhui", "new", ("gas-level-1:gas-001",)),
                         (0, "maintenance", "new", ("low-battery:gas-003",))]


def test_escalation_and_reminders_on_schedule_until_acknowledged():
    h = Harness()
    aid = h.fire(T0)
    h.at(T0 + 31 * M)
    assert h.lines() == [(0, "duty-xuhui", "new", (aid,)), (10, "supervisor-xuhui", "escalation", (aid,)),
                         (15, "duty-xuhui", "reminder", (aid,)), (30, "command-center", "escalation", (aid,)),
                         (30, "duty-xuhui", "reminder", (aid,))]
    h.act(T0 + 32 * M, "ack", aid)
    h.at(T0 + 3 * 60 * M)
    assert len(h.sent) == 5  # nothing after the acknowledgement
    assert h.router.next_due() is None or h.router.next_due() >= T0 + 3 * 60 * M


def test_ack_before_escalation_stops_it_and_closing_tells_everyone_notified():
    h = Harness()
    aid = h.fire(T0)
    h.at(T0 + 11 * M)  # escalated to the supervisor
    h.act(T0 + 12 * M, "ack", aid)
    h.fire(T0 + 20 * M, state="cleared")
    assert h.lines()[-2:] == [(20, "duty-xuhui", "cleared", (aid,)), (20, "supervisor-xuhui", "cleared", (aid,))]
    assert not h.router.states


def test_an_operator_close_sends_resolved():
    h = Harness()
    lead = h.fire(T0, alert_type="watchlist-vehicle", device="cp-001")
    h.act(T0 + M, "reject", lead, reason="other car")
    assert h.lines() == [(0, "command-center", "new", (lead,)), (1, "command-center", "resolved", (lead,))]


def test_a_silenced_alert_is_notified_when_the_silence_ends_if_still_open_and_unacknowledged():
    h = Harness()
    a = h.fire(T0 + 5 * M, device="gas-007")
    b = h.fire(T0 + 5 * M, device="gas-008", place=Place(district="xuhui", site="bldg-2"))
    h.at(T0 + 60 * M)
    assert h.lines()[0] == (5, "duty-xuhui", "new", (b,))
    assert (60, "duty-xuhui", "new", (a,)) in h.lines()
    # escalation is measured from that first notification
    h.at(T0 + 70 * M)
    assert (70, "supervisor-xuhui", "escalation", (a,)) in h.lines()


def test_a_silenced_alert_acknowledged_or_cleared_meanwhile_is_never_notified():
    h = Harness()
    a = h.fire(T0 + 5 * M, device="gas-007")
    h.act(T0 + 6 * M, "ack", a)
    c = h.fire(T0 + 7 * M, device="gas-007", alert_type="gas-level-2")
    h.fire(T0 + 8 * M, device="gas-007", alert_type="gas-level-2", state="cleared", since=T0 + 7 * M)
    h.at(T0 + 2 * 60 * M)
    assert [line for line in h.lines() if a in line[3] or c in line[3]] == []


def test_a_burst_of_one_type_at_one_site_is_one_grouped_notification():
    h = Harness()
    ids = [h.fire(T0 + i * timedelta(seconds=10), device=f"gas-01{i}") for i in range(4)]
    h.fire(T0 + 30 * timedelta(seconds=1), device="gas-099", place=Place(district="xuhui", site="bldg-9"))
    h.at(T0 + 3 * M)
    assert h.lines()[:3] == [(0, "duty-xuhui", "new", (ids[0],)), (0, "duty-xuhui", "new", ("gas-level-1:gas-099",)),
                             (2, "duty-xuhui", "group", tuple(ids[1:]))]
    # grouped alerts are escalated from the group's notification, and told when they clear
    h.fire(T0 + 4 * M, device="gas-012", state="cleared")
    assert h.lines()[-1] == (4, "duty-xuhui", "cleared", (ids[2],))


def test_router_state_survives_a_restart_without_resending():
    h = Harness()
    aid = h.fire(T0)
    h.at(T0 + 11 * M)
    restarted = Router(parse_policy(POLICY), states=h.router.states, groups=h.router.groups)
    again = restarted.advance(T0 + 11 * M)
    assert again == []
    later = [(n.receiver, n.reason.value) for n in restarted.advance(T0 + 16 * M)]
    assert later == [("duty-xuhui", "reminder")]
    assert len({n.key for n in h.sent + restarted.advance(T0 + 16 * M)}) == len(h.sent)
    assert aid in restarted.states


def test_notification_keys_are_unique():
    h = Harness()
    aid = h.fire(T0)
    h.at(T0 + 45 * M)
    h.fire(T0 + 46 * M, state="cleared")
    assert len({n.key for n in h.sent}) == len(h.sent) >= 6 and aid


@pytest.mark.parametrize("text, line, message", [
    ("receivers:\n  a: {webhook: ftp://x}\n", 2, "http"),
    ("receivers:\n  a: {email: [x@y.org]}\nroutes:\n  - match: {type: gas-*}\n    receivers: [b]\n", 5,
     "unknown receiver 'b'"),
    ("receivers:\n  a: {email: [x@y.org]}\nroutes:\n  - match: {colour: red}\n    receivers: [a]\n", 4, "unknown key"),
    ("receivers:\n  a: {email: [x@y.org]}\nroutes:\n  - receivers: [a]\n    remind_every: soon\n", 5, "duration"),
    ("receivers:\n  a: {email: [x@y.org]}\nroutes:\n  - receivers: [a]\n    match: {severity: loud}\n", 5,
     "unknown severity"),
    ("silences:\n  - {match: {}, from: 2026-11-29T08:00:00, until: 2026-11-29T09:00:00Z, by: li, reason: r}\n", 2,
     "zone"),
    ("receivers: [\n", 2, "not YAML"),
    ("receivers:\n  a: {pager: x}\n", 2, "unknown key 'pager'"),
])
def test_policy_errors_name_the_line(text, line, message):
    with pytest.raises(PolicyError, match=message) as err:
        parse_policy(text)
    assert err.value.line == line


def test_the_issue_example_policy_parses():
    p = parse_policy(POLICY)
    assert [r.name for r in p.receivers.values()] == ["duty-xuhui", "supervisor-xuhui", "command-center", "maintenance"]
    assert p.routes[0].escalate[1].after == timedelta(minutes=30) and p.group_window == 2 * M
    assert p.receivers["command-center"].channels[0].secret == "SECabc"


def test_the_shipped_example_policy_parses():
    import pathlib

    from alerting.policy import load_policy

    p = load_policy(pathlib.Path(__file__).resolve().parents[2] / "deploy" / "alert-policy.example.yaml")
    assert p.routes and p.silences == () and "command-center" in p.receivers
