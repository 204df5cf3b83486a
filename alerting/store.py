"""The durable alert store: one code path on SQLite (embedded default) and PostgreSQL (production).

SQLAlchemy Core; the schema is created and upgraded by Alembic (``alerting/migrations``). Tables:

- ``alerts``: one row per episode (alert id + episode start): the record as JSON plus indexed
  columns for searching (status, type, district, severity, times);
- ``routing`` / ``route_groups``: the router's state for open episodes and burst windows, with the
  next deadline indexed (timers are found by deadline, not by scanning);
- ``outbox``: every notification to send, one row per (notification, channel), unique by key, so a
  replayed decision never creates a second copy; the dispatcher marks rows sent or failed;
- ``users``: operators with a role, the SHA-256 of their API token and the hash of their console
  password (argon2, made by the console; the store never sees a password);
- ``sessions``: the console's signed-in sessions (SHA-256 of the cookie's token, the CSRF token, an
  idle deadline moved on by use and a hard end); the API accepts a live session's token like an API
  token, so every action of the console goes through the API's checks and audit.

Every change the alert service makes for one input (record, router state, notifications) is one
transaction: a crash leaves all of it or none.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import sqlalchemy as sa

from alerting.lifecycle import OPEN, AlertRecord
from alerting.routing import GroupState, Notification, RouteState

metadata = sa.MetaData()

alerts = sa.Table(
    "alerts", metadata,
    sa.Column("alert_id", sa.String(200), primary_key=True),
    sa.Column("since", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("current", sa.Boolean, nullable=False),  # the alert id's latest episode
    sa.Column("type", sa.String(48), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("device_id", sa.String(64), nullable=False),
    sa.Column("district", sa.String(64), nullable=False),
    sa.Column("site", sa.String(64), nullable=False),
    sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
    sa.Column("acknowledged_at", sa.DateTime(timezone=True)),
    sa.Column("closed_at", sa.DateTime(timezone=True)),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("published_version", sa.Integer, nullable=False, server_default="0"),  # on MQTT
    sa.Column("record", sa.Text, nullable=False),
    sa.Index("ix_alerts_status", "status", "severity"),
    sa.Index("ix_alerts_first_seen", "first_seen"),
    sa.Index("ix_alerts_district", "district", "first_seen"),
    sa.Index("ix_alerts_unpublished", "current", "published_version", "version"),
)

routing = sa.Table(
    "routing", metadata,
    sa.Column("alert_id", sa.String(200), primary_key=True),
    sa.Column("state", sa.Text, nullable=False),
)

route_groups = sa.Table(
    "route_groups", metadata,
    sa.Column("key", sa.String(300), primary_key=True),
    sa.Column("state", sa.Text, nullable=False),
)

outbox = sa.Table(
    "outbox", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(400), nullable=False),  # notification key + channel number
    sa.Column("receiver", sa.String(64), nullable=False),
    sa.Column("reason", sa.String(16), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("target", sa.String(500), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("status", sa.String(8), nullable=False),  # pending, sent, failed
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("due", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True)),
    sa.Column("error", sa.String(300), nullable=False, server_default=""),
    sa.UniqueConstraint("key", name="uq_outbox_key"),
    sa.Index("ix_outbox_due", "status", "due"),
)

users = sa.Table(
    "users", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("password_hash", sa.String(200), nullable=True),
)

sessions = sa.Table(
    "sessions", metadata,
    sa.Column("token_sha256", sa.String(64), primary_key=True),
    sa.Column("user_name", sa.String(64), sa.ForeignKey("users.name", ondelete="CASCADE"), nullable=False),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("max_at", sa.DateTime(timezone=True), nullable=False),
)

ROLES = ("operator", "supervisor", "admin")


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    key: str
    receiver: str
    reason: str
    channel: str
    target: str
    payload: dict
    attempts: int


@dataclass(frozen=True, slots=True)
class Delivery:
    """One channel of one notification: what the outbox holds and the dispatcher sends."""

    notification: Notification
    channel_no: int
    channel: str
    target: str
    payload: dict


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they were stored as UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _u(value: datetime | None) -> datetime | None:
    """Stored in UTC: SQLite keeps the wall-clock digits only, so every time is converted first."""
    return value.astimezone(UTC) if value is not None else None


def _enc(obj) -> str:
    return msgspec.json.encode(obj).decode()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def default_url(run_dir: Path) -> str:
    return f"sqlite:///{(run_dir / 'alerts.db').resolve()}"


class AlertStore:
    def __init__(self, url: str) -> None:
        self.url = url
        kwargs: dict = {"future": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine = sa.create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            @sa.event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_conn, _record) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.close()

    # ------------------------------------------------------------------ schema
    def migrate(self) -> None:
        """Create or upgrade the schema to the newest migration (Alembic)."""
        from alembic import command
        from alembic.config import Config

        if self.url.startswith("sqlite:///"):
            Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).resolve().parent / "migrations"))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ records
    def current(self, alert_id: str) -> AlertRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(alerts.c.record).where(alerts.c.alert_id == alert_id, alerts.c.current)
                               ).first()
        return msgspec.json.decode(row[0], type=AlertRecord) if row else None

    def episodes(self, alert_id: str) -> list[AlertRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(alerts.c.record).where(alerts.c.alert_id == alert_id)
                                .order_by(alerts.c.since)).all()
        return [msgspec.json.decode(r[0], type=AlertRecord) for r in rows]

    def search(self, status: Iterable[str] = (), type_glob: str | None = None, district: str | None = None,
               since: datetime | None = None, limit: int = 200) -> list[AlertRecord]:
        q = sa.select(alerts.c.record)
        if status:
            q = q.where(alerts.c.status.in_(list(status)))
        if type_glob:
            q = q.where(alerts.c.type.like(type_glob.replace("*", "%").replace("?", "_")))
        if district:
            q = q.where(alerts.c.district == district)
        if since:
            q = q.where(alerts.c.first_seen >= _u(since))
        q = q.order_by(alerts.c.first_seen.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [msgspec.json.decode(r[0], type=AlertRecord) for r in conn.execute(q)]

    def episodes_between(self, start: datetime, end: datetime, district: str | None = None) -> list[tuple]:
        """(type, severity, device_id, district, site, first_seen, acknowledged_at, closed_at) of every
        episode first seen in [start, end): what the governance report counts (no details, no text)."""
        c = alerts.c
        q = (sa.select(c.type, c.severity, c.device_id, c.district, c.site, c.first_seen, c.acknowledged_at,
                       c.closed_at).where(c.first_seen >= _u(start), c.first_seen < _u(end)))
        if district:
            q = q.where(c.district == district)
        with self.engine.connect() as conn:
            return [tuple(_utc(v) if isinstance(v, datetime) else v for v in row) for row in conn.execute(q)]

    def save(self, record: AlertRecord | None, router_dirty: dict, deliveries: list[Delivery],
             now: datetime) -> None:
        """One transaction: the record, the router's changed state, the new outbox rows."""
        with self.engine.begin() as conn:
            if record is not None:
                self._save_record(conn, record)
            for (kind, key), state in router_dirty.items():
                table, col = (routing, routing.c.alert_id) if kind == "alert" else (route_groups, route_groups.c.key)
                conn.execute(sa.delete(table).where(col == key))
                if state is not None:
                    conn.execute(sa.insert(table).values({col.name: key, "state": _enc(state)}))
            if deliveries:
                keys = [f"{d.notification.key}#{d.channel_no}" for d in deliveries]
                have = set(conn.execute(sa.select(outbox.c.key).where(outbox.c.key.in_(keys))).scalars())
                rows = [{"key": k, "receiver": d.notification.receiver, "reason": d.notification.reason.value,
                         "channel": d.channel, "target": d.target[:500], "payload": _enc(d.payload),
                         "status": "pending", "attempts": 0, "due": _u(now), "created_at": _u(now)}
                        for k, d in zip(keys, deliveries, strict=True) if k not in have]
                if rows:
                    conn.execute(sa.insert(outbox), rows)

    def _save_record(self, conn: sa.Connection, r: AlertRecord) -> None:
        values = {"current": True, "type": r.type, "severity": r.severity.value, "status": r.status.value,
                  "device_id": r.device_id, "district": r.place.district, "site": r.site,
                  "first_seen": _u(r.first_seen), "last_seen": _u(r.last_seen),
                  "acknowledged_at": _u(r.acknowledged_at), "closed_at": _u(r.closed_at), "count": r.count, "version": r.version, "record": _enc(r)}
        key = (alerts.c.alert_id == r.alert_id) & (alerts.c.since == _u(r.since))
        if conn.execute(sa.update(alerts).where(key).values(values)).rowcount == 0:
            conn.execute(sa.update(alerts).where(alerts.c.alert_id == r.alert_id, alerts.c.current)
                         .values(current=False))
            conn.execute(sa.insert(alerts).values(values | {"alert_id": r.alert_id, "since": _u(r.since),
                                                            "published_version": 0}))

    # ------------------------------------------------------------------ MQTT state
    def unpublished(self, limit: int = 500) -> list[AlertRecord]:
        """Current records whose latest version is not on MQTT yet."""
        q = (sa.select(alerts.c.record).where(alerts.c.current, alerts.c.published_version < alerts.c.version)
             .limit(limit))
        with self.engine.connect() as conn:
            return [msgspec.json.decode(r[0], type=AlertRecord) for r in conn.execute(q)]

    def mark_published(self, record: AlertRecord) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.update(alerts).where(alerts.c.alert_id == record.alert_id, alerts.c.since == _u(record.since),
                                                 alerts.c.published_version < record.version)
                         .values(published_version=record.version))

    # ------------------------------------------------------------------ router state
    def load_routing(self) -> tuple[dict[str, RouteState], dict[str, GroupState]]:
        with self.engine.connect() as conn:
            states = {k: msgspec.json.decode(v, type=RouteState) for k, v in conn.execute(sa.select(routing))}
            groups = {k: msgspec.json.decode(v, type=GroupState) for k, v in conn.execute(sa.select(route_groups))}
        return states, groups

    # ------------------------------------------------------------------ outbox
    def due_deliveries(self, now: datetime, limit: int = 100, skip: Iterable[int] = ()) -> list[OutboxRow]:
        """Pending rows that are due, oldest first; ``skip``: rows already being sent (a slow receiver's
        rows never hold back the others)."""
        q = sa.select(outbox).where(outbox.c.status == "pending", outbox.c.due <= _u(now))
        if skip:
            q = q.where(outbox.c.id.not_in(list(skip)))
        q = q.order_by(outbox.c.due, outbox.c.id).limit(limit)
        with self.engine.connect() as conn:
            return [OutboxRow(r.id, r.key, r.receiver, r.reason, r.channel, r.target, msgspec.json.decode(r.payload),
                              r.attempts) for r in conn.execute(q)]

    def next_delivery_due(self) -> datetime | None:
        with self.engine.connect() as conn:
            due = conn.execute(sa.select(sa.func.min(outbox.c.due)).where(outbox.c.status == "pending")).scalar()
        return _utc(due)

    def delivered(self, row_id: int, now: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.update(outbox).where(outbox.c.id == row_id)
                         .values(status="sent", sent_at=_u(now), attempts=outbox.c.attempts + 1))

    def retry(self, row_id: int, due: datetime, error: str, final: bool) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.update(outbox).where(outbox.c.id == row_id)
                         .values(status="failed" if final else "pending", due=_u(due), error=error[:300],
                                 attempts=outbox.c.attempts + 1))

    def outbox_rows(self) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(outbox).order_by(outbox.c.id))]

    # ------------------------------------------------------------------ users
    def add_user(self, name: str, role: str, now: datetime, password_hash: str | None = None) -> str:
        """Create an operator, or give an existing one a new role and API token (a new password too,
        when one is given; the old one is kept otherwise). Returns the API token, shown once and
        stored hashed. A new token or password ends the user's console sessions."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        token = secrets.token_urlsafe(32)
        values = {"role": role, "token_sha256": _digest(token)}
        if password_hash is not None:
            values["password_hash"] = password_hash
        with self.engine.begin() as conn:
            conn.execute(sa.delete(sessions).where(sessions.c.user_name == name))
            if conn.execute(sa.update(users).where(users.c.name == name).values(**values)).rowcount == 0:
                conn.execute(sa.insert(users).values(name=name, created_at=_u(now), **values))
        return token

    def user_by_token(self, token: str, now: datetime | None = None) -> tuple[str, str] | None:
        """The (name, role) an API token or a live console session belongs to."""
        digest, now = _digest(token), _u(now or datetime.now(UTC))
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(users.c.name, users.c.role).where(users.c.token_sha256 == digest)).first()
            if row is None:
                row = conn.execute(
                    sa.select(users.c.name, users.c.role).join(sessions, sessions.c.user_name == users.c.name)
                    .where(sessions.c.token_sha256 == digest, sessions.c.expires_at > now,
                           sessions.c.max_at > now)).first()
        return (row[0], row[1]) if row else None

    def list_users(self) -> list[dict]:
        with self.engine.connect() as conn:
            return [{"name": r.name, "role": r.role, "created_at": _utc(r.created_at),
                     "password": r.password_hash is not None}
                    for r in conn.execute(sa.select(users).order_by(users.c.name))]

    def password_hash(self, name: str) -> tuple[str, str] | None:
        """(hash, role) of a user who may sign in to the console, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(users.c.password_hash, users.c.role).where(users.c.name == name)).first()
        return (row[0], row[1]) if row and row[0] else None

    def set_password_hash(self, name: str, password_hash: str) -> bool:
        """A rehash on sign-in (stronger parameters); False if the user is gone."""
        with self.engine.begin() as conn:
            return conn.execute(sa.update(users).where(users.c.name == name)
                                .values(password_hash=password_hash)).rowcount == 1

    def open_session(self, name: str, token: str, csrf: str, now: datetime, idle: timedelta,
                     longest: timedelta) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(sessions).where(sessions.c.max_at <= _u(now)))  # the expired, now and then
            conn.execute(sa.insert(sessions).values(token_sha256=_digest(token), user_name=name, csrf=csrf,
                                                    created_at=_u(now), expires_at=_u(min(now + idle, now + longest)),
                                                    max_at=_u(now + longest)))

    def session(self, token: str, now: datetime, idle: timedelta) -> dict | None:
        """A live session (name, role, csrf, expires_at) by its token; its idle deadline is moved
        on (at most once a minute: not a write per request). None once expired or signed out."""
        digest = _digest(token)
        q = (sa.select(sessions.c.csrf, sessions.c.expires_at, sessions.c.max_at, users.c.name, users.c.role)
             .join(users, sessions.c.user_name == users.c.name).where(sessions.c.token_sha256 == digest))
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        if row is None:
            return None
        expires, max_at = _utc(row.expires_at), _utc(row.max_at)
        if expires <= now or max_at <= now:
            return None
        moved = min(now + idle, max_at)
        if moved - expires > timedelta(minutes=1):
            with self.engine.begin() as conn:
                conn.execute(sa.update(sessions).where(sessions.c.token_sha256 == digest).values(expires_at=_u(moved)))
            expires = moved
        return {"name": row.name, "role": row.role, "csrf": row.csrf, "expires_at": expires}

    def close_session(self, token: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(sessions).where(sessions.c.token_sha256 == _digest(token)))

    # ------------------------------------------------------------------ KPIs
    def open_counts(self) -> list[tuple[str, str, str, int]]:
        """(severity, type, district, count) of open alerts."""
        q = (sa.select(alerts.c.severity, alerts.c.type, alerts.c.district, sa.func.count())
             .where(alerts.c.status.in_(sorted(s.value for s in OPEN)))
             .group_by(alerts.c.severity, alerts.c.type, alerts.c.district))
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(q)]
