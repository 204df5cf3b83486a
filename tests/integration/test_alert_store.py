"""The alert store on both databases it supports, with the same code: SQLite (embedded default) and
PostgreSQL (production), each migrated by Alembic from empty."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from alerting.lifecycle import ActionKind, AlertAction, Place, Status, apply_action, on_transition
from alerting.policy import parse_policy
from alerting.store import AlertStore
from alerting.owner import Owner
from safecity.registry import RegistryFile
from tests.unit.test_alert_lifecycle import transition

pytestmark = pytest.mark.integration
CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 29, 16, 0, tzinfo=CST)  # device clocks send local times with their offset


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'alerts.db'}"
    else:
        pg = request.getfixturevalue("postgres")
        import psycopg

        name = f"store_{tmp_path.name[-12:].lower().replace('-', '_')}"
        with psycopg.connect(f"host={pg.host} port={pg.port} user={pg.user} dbname=postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        url = pg.url(name)
    s = AlertStore(url)
    s.migrate()
    s.migrate()  # idempotent
    yield s
    s.close()


POLICY = parse_policy("""
receivers:
  duty: {webhook: "http://127.0.0.1:9/x", email: [a@example.org]}
routes:
  - match: {type: "gas-*"}
    receivers: [duty]
    escalate: [{after: 10m, receivers: [duty]}]
group_window: 0s
""")


def test_full_history_of_episodes_steps_and_search(store):
    owner = Owner(store, POLICY, RegistryFile(None))
    owner.on_alert(transition(since=T0, at=T0), T0)
    owner.on_alert(transition(since=T0, at=T0 + timedelta(seconds=5), value=40.0), T0)
    owner.on_action(AlertAction(action=ActionKind.ACK, alert_id="gas-level-1:gas-001", by="li",
                                at=T0 + timedelta(minutes=1), action_id="a1"), T0 + timedelta(minutes=1))
    owner.on_alert(transition(state="cleared", since=T0, at=T0 + timedelta(minutes=3)), T0 + timedelta(minutes=3))
    owner.on_alert(transition(since=T0 + timedelta(hours=1)), T0 + timedelta(hours=1))  # a second episode
    episodes = store.episodes("gas-level-1:gas-001")
    assert [(e.status, e.count) for e in episodes] == [(Status.CLEARED, 2), (Status.FIRING, 1)]
    assert [s.change.value for s in episodes[0].steps] == ["opened", "acknowledged", "cleared"]
    assert episodes[0].details["value"] == 40.0 and episodes[0].first_seen == T0
    assert store.current("gas-level-1:gas-001").since == T0 + timedelta(hours=1)
    assert [r.status for r in store.search(status=["cleared"])] == [Status.CLEARED]
    assert len(store.search(type_glob="gas-*", since=T0 + timedelta(minutes=30))) == 1
    assert store.search(district="nowhere") == []
    assert store.open_counts() == [("high", "gas-level-1", "", 1)]
    # the outbox: one "new" per episode and channel, the closing one, nothing twice
    rows = store.outbox_rows()
    assert [(r["reason"], r["channel"]) for r in rows] == [
        ("new", "webhook"), ("new", "email"), ("cleared", "webhook"), ("cleared", "email"),
        ("new", "webhook"), ("new", "email")]
    assert len({r["key"] for r in rows}) == 6


def test_router_state_and_outbox_survive_a_restart_without_duplicates(store):
    owner = Owner(store, POLICY, RegistryFile(None))
    owner.on_alert(transition(since=T0, at=T0), T0)
    owner.on_alert(transition(since=T0, at=T0), T0)  # a replay
    restarted = Owner(store, POLICY, RegistryFile(None))
    assert restarted.router.next_due() == T0 + timedelta(minutes=10)
    restarted.tick(T0 + timedelta(minutes=10))
    Owner(store, POLICY, RegistryFile(None)).tick(T0 + timedelta(minutes=10))  # a replayed tick
    assert [r["reason"] for r in store.outbox_rows()] == ["new", "new", "escalation", "escalation"]
    due = store.due_deliveries(datetime.now(UTC))
    assert len(due) == 4
    store.delivered(due[0].id, datetime.now(UTC))
    store.retry(due[1].id, datetime.now(UTC) + timedelta(hours=1), "HTTP 500", final=False)
    assert [r.id for r in store.due_deliveries(datetime.now(UTC))] == [due[2].id, due[3].id]
    assert [r.id for r in store.due_deliveries(datetime.now(UTC), skip={due[2].id})] == [due[3].id]  # in flight


def test_users_and_published_versions(store):
    token = store.add_user("li", "supervisor", datetime.now(UTC))
    assert store.user_by_token(token) == ("li", "supervisor") and store.user_by_token("nope") is None
    with pytest.raises(ValueError):
        store.add_user("x", "god", datetime.now(UTC))
    rec = on_transition(None, transition(since=T0, at=T0), Place()).record
    store.save(rec, {}, [], T0)
    assert [r.alert_id for r in store.unpublished()] == [rec.alert_id]
    store.mark_published(rec)
    assert store.unpublished() == []
    acked = apply_action(rec, AlertAction(action=ActionKind.ACK, alert_id=rec.alert_id, by="li", at=T0)).record
    store.save(acked, {}, [], T0)
    assert [r.version for r in store.unpublished()] == [acked.version]
