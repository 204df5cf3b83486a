"""Typed settings from environment variables (prefix ``SAFECITY_``, nested with ``__``).

Every field has a loopback default, a bound and a description; secrets are SecretStr and never
printed. ``safecity check-config`` lists every error with the variable that caused it.

    SAFECITY_MQTT__PORT=1883  SAFECITY_KAFKA__BOOTSTRAP=127.0.0.1:9092  SAFECITY_INFLUX__URL=...
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "SAFECITY_"
ENV_DELIMITER = "__"

class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttSettings(_Section):
    host: str = Field("127.0.0.1", description="MQTT broker host")
    port: int = Field(1883, ge=1, le=65535, description="MQTT broker port")
    username: str | None = Field(None, description="MQTT user name (none: anonymous)")
    password: SecretStr | None = Field(None, description="MQTT password")
    keepalive: int = Field(30, ge=5, le=3600, description="MQTT keepalive, seconds")
    ingest_client_id: str = Field("safecity-ingest", min_length=1, max_length=64,
                                  description="client id prefix of the ingest bridge: one persistent session per device kind, <id>-<kind>")
    ingest_share_group: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,40}$",
                                           description="several ingest bridges (each its own ingest_client_id) split the "
                                                       "load: each lane subscribes as $share/<group>/<filter>")
    max_inflight: int = Field(1000, ge=1, le=65535,
                              description="QoS 1 messages in flight per client, bounded")
    tls_ca_file: Path | None = Field(None, description="CA certificate to verify the broker with (set: TLS)")
    tls_cert_file: Path | None = Field(None, description="client certificate, where the broker asks for one")
    tls_key_file: Path | None = Field(None, description="the client certificate's private key")

    @model_validator(mode="after")
    def _tls(self) -> MqttSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        if self.tls_cert_file is not None and self.tls_ca_file is None:
            raise ValueError("a client certificate needs tls_ca_file (TLS) too")
        return self


class KafkaSettings(_Section):
    bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,host:port]")
    partitions: int = Field(4, ge=1, le=1024, description="partitions of each event topic")
    replication: int = Field(1, ge=1, le=7, description="replication factor of created topics")
    linger_ms: int = Field(5, ge=0, le=1000, description="how long ingest lets messages gather, woken from idle, "
                           "before it produces them in one burst (its producer does not linger), milliseconds")
    personal_retention_h: float = Field(
        48.0, ge=1, le=24 * 30, description="how long Kafka keeps registrations (sealed personal data): at least "
                                            "the retro-hunt's look-back, plus room for an outage")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="how clients reach Kafka (production across hosts: SASL_SSL or SSL)")
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism (SASL_* protocols)")
    sasl_username: str | None = Field(None, description="SASL user (SASL_* protocols)")
    sasl_password: SecretStr | None = Field(None, description="SASL password")
    ssl_ca_file: Path | None = Field(None, description="CA to verify the brokers with (SSL, SASL_SSL; none: system CAs)")
    ssl_cert_file: Path | None = Field(None, description="client certificate (mutual TLS)")
    ssl_key_file: Path | None = Field(None, description="the client certificate's private key")

    @model_validator(mode="after")
    def _security(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL") and (not self.sasl_username or self.sasl_password is None):
            raise ValueError(f"{self.security_protocol} needs sasl_username and sasl_password")
        if (self.ssl_cert_file is None) != (self.ssl_key_file is None):
            raise ValueError("ssl_cert_file and ssl_key_file go together")
        return self

    @field_validator("bootstrap")
    @classmethod
    def _hosts(cls, value: str) -> str:
        for part in value.split(","):
            host, sep, port = part.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{part!r} is not host:port")
        return value


class InfluxSettings(_Section):
    url: str = Field("http://127.0.0.1:8087", pattern=r"^https?://",
                     description="InfluxDB URL serving /api/v2/write (1.8+, 2.x, 3.x, or the 1.x adapter)")
    token: SecretStr = Field(SecretStr("safecity:safecity"), description="API token (1.x: user:password)")
    org: str = Field("safecity", min_length=1, description="organisation (ignored by 1.x)")
    bucket: str = Field("safecity", min_length=1, description="bucket (1.x: database[/retention policy])")
    batch_size: int = Field(5000, ge=1, le=100_000, description="points per write")
    flush_interval_ms: int = Field(1000, ge=10, le=60_000, description="longest wait before a write")


class WorkerSettings(_Section):
    app_id: str = Field("safecity", pattern=r"^[a-z0-9-]{1,40}$", description="Faust app id (consumer group)")
    web_port: int | None = Field(None, ge=1, le=65535, description="Faust web port (none: web disabled)")
    session_timeout_s: float = Field(10.0, ge=3, le=300, description="consumer session timeout")
    rebalance_timeout_s: float = Field(10.0, ge=3, le=300, description="rebalance timeout")
    fetch_max_wait_ms: int = Field(10, ge=1, le=1500, description="longest a fetch waits at the broker for "
                                   "fetch_min_bytes (Faust's 1500 held busy partitions back)")
    fetch_min_bytes: int = Field(4096, ge=1, le=1_048_576, description="a fetch returns once this much is waiting "
                                 "(or after fetch_max_wait_ms): fewer, fuller fetches (1: one per record or two)")
    fetch_partition_bytes: int = Field(1024 * 1024, ge=1024, le=64 * 1024 * 1024,
                                       description="most a fetch returns of one partition: catching up, the others "
                                                   "wait behind it; at least the largest record (a plate read with "
                                                   "its snapshot: ~0.7 MB), or the broker sends it only as a fetch's "
                                                   "first partition")
    producer_linger_ms: int = Field(0, ge=0, le=1000, description="the worker's producer linger (its changelog "
                                    "and metric records are batched already: a linger only delays alerts)")
    inline_delivery: bool = Field(True, description="hand each fetched record to its stream without Faust's "
                                  "four tasks per record (off: Faust's own hand-off)")
    changelog_batches: bool = Field(True, description="send tables' changelog records in batches per partition, "
                                    "flushed before every commit (off: Faust's record by record)")
    store_wal: bool = Field(False, description="RocksDB's write-ahead log for the table store (off: the changelog "
                            "topic is the durable copy; a crash re-reads more of it)")
    record_stats: bool = Field(False, description="feed Faust's monitor every record, stream event and table "
                               "access (the Faust web's /stats; off: only commits, sends and rebalances)")
    full_gc_every_s: float = Field(300.0, ge=0, le=86400, description="full garbage collection interval (0: "
                                   "CPython's automatic ones, which held the loop every few seconds)")
    data_dir: Path = Field(Path(".run/worker"), description="Faust data directory (one per worker process: "
                                                             "its tables' local store lives there)")
    warm_start: bool = Field(True, description="read the tables' changelogs into the local store before joining "
                             "the group, so partitions taken over wait only for what changed since (rocksdb)")
    store: Literal["rocksdb://", "memory://"] = Field(
        "rocksdb://", description="table store: rocksdb (on disk: a restart reads only the changelog's tail) "
                                  "or memory (rebuilt from the whole changelog on every start)")


class IngestSettings(_Section):
    queue_size: int = Field(5000, ge=10, le=1_000_000, description="bounded hand-off between MQTT and Kafka, per device kind")
    stats_interval_s: float = Field(1.0, ge=0.1, le=3600, description="how often counters are published")
    max_clock_ahead_s: float = Field(600.0, ge=0, le=86400, description="event times further ahead: dead letter")
    max_event_age_s: float = Field(7 * 86400.0, gt=0, le=365 * 86400, description="event times further back: "
                                                                                   "dead letter")
    urgent_lel: float = Field(10.0, ge=0, le=100, description="combustible gas readings at or above this %LEL go "
                              "to the urgent topic, past the backlog of routine ones (0: none)")
    urgent_co_ppm: float = Field(30.0, ge=0, le=10_000, description="CO readings at or above this ppm go to the "
                                 "urgent topic (0: none)")


class GasSettings(_Section):
    level1_lel: float = Field(25.0, gt=0, le=100, description="first alarm level, %LEL (GB/T 50493-2019)")
    level2_lel: float = Field(50.0, gt=0, le=100, description="second alarm level, %LEL")
    hold_readings: int = Field(2, ge=1, le=100, description="readings a level must hold before it fires")
    clear_s: float = Field(60.0, ge=0, le=3600, description="time below the clear level before a clear")
    interval_s: float = Field(60.0, gt=0, le=86400, description="expected reporting interval (registry overrides)")
    offline_intervals: int = Field(3, ge=1, le=100, description="missed intervals before sensor-offline")
    check_every_s: float = Field(5.0, ge=0.5, le=600, description="how often workers look for silent sensors")
    site_window_s: float = Field(300.0, ge=1, le=86400, description="window for correlating alarms at one site")


class CameraSettings(_Section):
    bad_frames: int = Field(3, ge=1, le=1000, description="consecutive bad frames before a camera alert")
    good_frames: int = Field(3, ge=1, le=1000, description="consecutive good frames before it clears")
    frozen_s: float = Field(60.0, gt=0, le=86400, description="identical frames for this long: frozen")
    motion: bool = Field(True, description="run motion detection on published frames")


class WatchlistSettings(_Section):
    cooldown_s: float = Field(600.0, ge=0, le=86400, description="repeat hits of a subject at a place within this: one alert")
    retro_hours: float = Field(24.0, ge=0, le=24 * 7, description="how far back a new entry is hunted in recent reads")
    late_upload_s: float = Field(1800.0, gt=0, le=86400, description="registration uploaded later than this: late")
    cooldown_keep_s: float = Field(3600.0, ge=0, le=30 * 86400,
                                   description="a cooldown entry is dropped this long after its cooldown ended")
    cooldown_sweep_s: float = Field(600.0, ge=1, le=86400, description="how often expired cooldown entries are dropped")


class AlertSettings(_Section):
    """The alert service (``safecity alerter``): store, policy, API, channels."""

    db_url: SecretStr | None = Field(None, description="SQLAlchemy URL of the alert store (none: SQLite file "
                                                       "<run_dir>/alerts.db; production: postgresql+psycopg://...)")
    policy: Path | None = Field(None, description="notification policy (YAML); none: alerts are recorded and "
                                                  "published on MQTT only")
    group_id: str = Field("safecity-alerts", pattern=r"^[a-z0-9-]{1,60}$", description="Kafka consumer group")
    api_host: str = Field("127.0.0.1", description="API listen address")
    api_port: int = Field(8090, ge=1, le=65535, description="API port")
    api_url: str = Field("http://127.0.0.1:8090", pattern=r"^https?://", description="API URL the CLI talks to")
    token: SecretStr | None = Field(None, description="the CLI's API token (safecity alert user add)")
    handled_target_s: float = Field(900.0, gt=0, le=7 * 86400,
                                    description="an alert acknowledged or closed within this is handled in time")
    snapshot_every_s: float = Field(10.0, ge=0.5, le=3600, description="open-alert snapshot metric interval")
    retries: int = Field(5, ge=0, le=50, description="delivery retries per channel before a dead letter")
    retry_base_s: float = Field(1.0, gt=0, le=600, description="first retry delay (doubles each time)")
    retry_max_s: float = Field(300.0, gt=0, le=86400, description="longest retry delay")
    send_timeout_s: float = Field(10.0, gt=0, le=300, description="one delivery attempt's time limit")
    smtp_host: str = Field("127.0.0.1", description="SMTP server for e-mail receivers")
    smtp_port: int = Field(25, ge=1, le=65535, description="SMTP port")
    smtp_from: str = Field("safecity@localhost", description="sender address")
    smtp_username: str | None = Field(None, description="SMTP user (none: no login)")
    smtp_password: SecretStr | None = Field(None, description="SMTP password")
    smtp_starttls: bool = Field(False, description="STARTTLS before login")


class LocalServices(_Section):
    """Where `safecity services` runs the local servers (development, demo and tests)."""

    run_dir: Path = Field(Path(".run"), description="state, logs and PID files of local services")
    kafka_controller_port: int = Field(9093, ge=1, le=65535, description="KRaft controller port")
    influxdb_port: int = Field(8086, ge=1, le=65535, description="InfluxDB 1.x HTTP port")
    influxdb_rpc_port: int = Field(8088, ge=1, le=65535, description="InfluxDB 1.x RPC port")
    kafka_libs: Path = Field(Path.home() / ".cache" / "safecity" / "kafka-3.9.1",
                             description="where the Kafka broker jars are fetched to")
    kafka_heap: str = Field("768m", pattern=r"^\d+[mg]$", description="Kafka broker JVM heap")
    kafka_cleaner_mb_s: float = Field(16.0, ge=0, description="the broker's log cleaner paced to this many MB/s "
                                      "read and written (compacting the tables' changelogs), 0: unpaced")


class PrivacySettings(_Section):
    pseudonym_key: SecretStr | None = Field(
        None, description="secret key of the subjects' pseudonyms (32+ random bytes, hex or text; production: "
                          "required, the same for every worker; none: a random key kept in <run_dir>/pseudonym.key)")
    pseudonym_key_id: str = Field("k1", pattern=r"^[a-z0-9]{1,8}$",
                                  description="names the key in every pseudonym; change it with the key (rotation)")
    data_key: SecretStr | None = Field(
        None, description="AES-256 key (64 hex digits) sealing registrations and their dead letters on Kafka "
                          "(ingest seals, workers open; none: a random key kept in <run_dir>/data.key)")
    data_key_id: str = Field("d1", pattern=r"^[a-z0-9]{1,8}$", description="names the data key in each sealed value")
    previous_data_keys: SecretStr | None = Field(
        None, description="keys still opened after a rotation: kid:hex[,kid:hex] (secret)")
    audit_key: SecretStr | None = Field(
        None, description="secret key of the audit trail's chain (the alert service and auditors; none: a random "
                          "key kept in <run_dir>/audit.key)")


class ConsoleSettings(_Section):
    """The operator console (``safecity console``): a browser front end of the alert API."""

    host: str = Field("127.0.0.1", description="console listen address")
    port: int = Field(8092, ge=1, le=65535, description="console port")
    session_idle_min: float = Field(60.0, gt=0, le=24 * 60, description="a session unused this long ends")
    session_max_h: float = Field(12.0, gt=0, le=7 * 24, description="a session ends this long after sign-in (a shift)")
    secure_cookies: bool = Field(False, description="session cookie only over HTTPS (set behind a TLS proxy)")
    tile_url: str | None = Field(None, pattern=r"^https?://.*\{z\}.*\{x\}.*\{y\}",
                                 description="the command center's own map tiles, e.g. https://tiles.city/{z}/{x}/{y}.png "
                                             "(none: devices on a plain background)")
    districts_geojson: Path | None = Field(None, description="district outlines (GeoJSON polygons with a 'name' or "
                                                             "'district' property) drawn on the map")
    @field_validator("tile_url", "districts_geojson", mode="before")
    @classmethod
    def _empty_is_none(cls, value):
        return None if value == "" else value

    max_failed_signins: int = Field(5, ge=1, le=100, description="failed sign-ins before a user is locked out a while")
    lockout_s: float = Field(60.0, ge=1, le=86400, description="how long that lockout lasts")


class HealthSettings(_Section):
    host: str = Field("127.0.0.1", description="health endpoint address (0.0.0.0 to reach it from other hosts)")
    port: int | None = Field(None, ge=1, le=65535,
                             description="health endpoint port of this process (GET /health; none: not served)")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_DELIMITER,
                                      extra="forbid", frozen=True)

    mqtt: MqttSettings = MqttSettings()
    kafka: KafkaSettings = KafkaSettings()
    influx: InfluxSettings = InfluxSettings()
    worker: WorkerSettings = WorkerSettings()
    ingest: IngestSettings = IngestSettings()
    gas: GasSettings = GasSettings()
    camera: CameraSettings = CameraSettings()
    watchlist: WatchlistSettings = WatchlistSettings()
    alerts: AlertSettings = AlertSettings()
    services: LocalServices = LocalServices()
    health: HealthSettings = HealthSettings()
    console: ConsoleSettings = ConsoleSettings()
    privacy: PrivacySettings = PrivacySettings()
    registry: Path | None = Field(None, description="device registry (YAML or CSV); set: unknown devices are rejected")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="log level")
    background_nice: int = Field(10, ge=0, le=19, description="CPU priority (nice) of the work off the alarm path: "
                                 "image analysis, retro-hunts, the metrics writer, local InfluxDB, the local Kafka's "
                                 "log cleaner thread (0: as the alarm path)")

    @model_validator(mode="after")
    def _retention_covers_the_lookback(self) -> Settings:
        if self.kafka.personal_retention_h < self.watchlist.retro_hours:
            raise ValueError(f"kafka.personal_retention_h ({self.kafka.personal_retention_h:g}) is shorter than "
                             f"watchlist.retro_hours ({self.watchlist.retro_hours:g}): the retro-hunt would miss "
                             "registrations")
        return self


def env_name(loc: tuple[int | str, ...]) -> str:
    """The environment variable behind a validation error location (a rule across sections: SAFECITY_*)."""
    return ENV_PREFIX + (ENV_DELIMITER.join(str(p).upper() for p in loc) if loc else "*")


def config_errors() -> list[str]:
    """Every configuration error in the environment as 'VARIABLE: message' (empty when valid)."""
    errors: list[str] = []
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    for key in sorted(os.environ):
        if key.startswith(ENV_PREFIX) and key.split(ENV_DELIMITER)[0] not in known:
            errors.append(f"{key}: unknown setting")
    try:
        Settings()
    except ValidationError as exc:
        errors.extend(f"{env_name(e['loc'])}: {e['msg']}" for e in exc.errors())
    return errors


def load_settings() -> Settings:
    return Settings()
