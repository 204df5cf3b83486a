"""The alert lifecycle: every legal step, every illegal one, and replays that change nothing."""

from datetime import UTC, datetime, timedelta

import pytest

from alerting.lifecycle import (ActionKind, AlertAction, Change, IllegalStep, Place, Status, apply_action,
                                on_transition)
from models import alerts as alert_types
from models.schemas import Alert, AlertState

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def transition(alert_type="gas-level-1", device="gas-001", state="firing", since=T0, at=None, value=30.0):
    return Alert(alert_id=f"{alert_type}:{device}", type=alert_type, severity=alert_types.severity(alert_type),
                 state=AlertState(state), device_id=device, since=since, at=at or since,
                 summary=f"{alert_type} at {value}", details={"value": value})


def action(kind, alert_id="gas-level-1:gas-001", at=T0 + timedelta(minutes=1), by="li", **kw):
    return AlertAction(action=ActionKind(kind), alert_id=alert_id, by=by, at=at, **kw)


def opened(**kw):
    return on_transition(None, transition(**kw), Place(district="xuhui", site="bldg-1")).record


def test_a_firing_transition_opens_a_record_with_its_place_and_evidence():
    out = on_transition(None, transition(), Place(district="xuhui", site="bldg-1", grid="G1"))
    r = out.record
    assert out.change is Change.OPENED
    assert (r.status, r.count, r.first_seen, r.last_seen) == (Status.FIRING, 1, T0, T0)
    assert r.place.district == "xuhui" and r.site == "bldg-1" and r.details == {"value": 30.0}
    assert [s.change for s in r.steps] == [Change.OPENED]


def test_repeated_firing_counts_and_keeps_the_latest_evidence_but_a_replay_changes_nothing():
    r = opened()
    later = on_transition(r, transition(at=T0 + timedelta(seconds=5), value=41.0))
    assert later.change is Change.OCCURRED
    assert (later.record.count, later.record.last_seen, later.record.details["value"]) == (2, T0 + timedelta(seconds=5), 41.0)
    assert later.record.version == r.version + 1
    replay = on_transition(later.record, transition(at=T0 + timedelta(seconds=5), value=41.0))
    assert replay.change is None and replay.record is later.record
    first_again = on_transition(later.record, transition())
    assert first_again.change is None


def test_an_older_occurrence_arriving_late_counts_but_does_not_replace_newer_evidence():
    r = on_transition(None, transition(at=T0 + timedelta(seconds=9), value=50.0)).record
    late = on_transition(r, transition(at=T0 + timedelta(seconds=3), value=20.0)).record
    assert late.count == 2 and late.first_seen == T0 + timedelta(seconds=3) and late.details["value"] == 50.0


def test_ack_then_cleared_by_its_cause():
    r = apply_action(opened(), action("ack", reason="crew dispatched")).record
    assert (r.status, r.acknowledged_by) == (Status.ACKNOWLEDGED, "li")
    out = on_transition(r, transition(state="cleared", at=T0 + timedelta(minutes=5)))
    assert out.change is Change.CLEARED and out.record.status is Status.CLEARED
    assert out.record.closed_at == T0 + timedelta(minutes=5)
    assert [s.change for s in out.record.steps] == [Change.OPENED, Change.ACKNOWLEDGED, Change.CLEARED]
    assert out.record.steps[1].comment == "crew dispatched"


def test_a_clear_of_a_closed_or_older_episode_is_ignored():
    r = apply_action(opened(), action("resolve", by="wang")).record
    assert on_transition(r, transition(state="cleared", at=T0 + timedelta(minutes=3))).change is None
    r2 = opened(since=T0 + timedelta(hours=1))
    assert on_transition(r2, transition(state="cleared", since=T0)).change is None


def test_a_firing_after_the_episode_closed_opens_a_new_episode():
    closed = on_transition(opened(), transition(state="cleared", at=T0 + timedelta(minutes=2))).record
    again = on_transition(closed, transition(since=T0 + timedelta(minutes=10)))
    assert again.change is Change.OPENED and again.record.count == 1 and again.record.since == T0 + timedelta(minutes=10)


def test_assign_and_comment_keep_the_alert_open():
    r = apply_action(opened(), action("assign", assignee="unit-7")).record
    assert r.assignee == "unit-7" and r.status is Status.FIRING
    r = apply_action(r, action("comment", reason="on the way")).record
    assert r.steps[-1].change is Change.COMMENTED and r.open


def test_leads_are_confirmed_or_rejected_with_a_reason():
    lead = opened(alert_type="watchlist-vehicle", device="cp-001")
    ok = apply_action(lead, action("confirm", alert_id=lead.alert_id, reason="checked at the gate"))
    assert ok.change is Change.CONFIRMED and ok.record.status is Status.CONFIRMED and ok.record.closed_by == "li"
    no = apply_action(lead, action("reject", alert_id=lead.alert_id, reason="different vehicle"))
    assert no.record.status is Status.REJECTED
    with pytest.raises(IllegalStep, match="needs a reason"):
        apply_action(lead, action("reject", alert_id=lead.alert_id))


@pytest.mark.parametrize("setup, act, message", [
    (None, "ack", "no alert"),
    ("resolved", "resolve", "nothing to resolve"),
    ("resolved", "ack", "nothing to ack"),
    ("acked", "ack", "by li"),
    ("open", "confirm", "applies to watch-list leads"),
    ("open", "reject", "applies to watch-list leads"),
    ("open", "assign", "needs an assignee"),
    ("open", "comment", "needs text"),
])
def test_illegal_steps_are_refused_with_a_reason(setup, act, message):
    record = None
    if setup:
        record = opened()
        if setup == "resolved":
            record = apply_action(record, action("resolve")).record
        elif setup == "acked":
            record = apply_action(record, action("ack")).record
    with pytest.raises(IllegalStep, match=message):
        apply_action(record, action(act, action_id="a1"))


def test_the_same_action_twice_is_applied_once():
    r = apply_action(opened(), action("ack", action_id="x-1")).record
    again = apply_action(r, action("ack", action_id="x-1"))
    assert again.change is None and again.record is r


def test_rules_take_severity_and_closing_from_the_one_registry():
    from processors.rules import camera, watch_alerts

    with pytest.raises(alert_types.UnknownAlertType):
        alert_types.severity("no-such-alert")
    assert all(alert_types.alert_type(t).closing is alert_types.Closing.LEAD for t in watch_alerts.LEAD_TYPES)
    assert all(t in alert_types.ALERT_TYPES for t in camera.CAMERA_ALERTS)
    assert alert_types.alert_type("gas-level-2").severity is alert_types.Severity.CRITICAL
