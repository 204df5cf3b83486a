"""Creates the pipeline's Kafka topics with their settings (idempotent). Ingest and every worker
call it at start, so topics never come from broker auto-creation with default settings."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import murmur2

from models import topics
from models.settings import KafkaSettings

logger = logging.getLogger(__name__)

DAY_MS = 24 * 3600 * 1000


#: Topics holding personal data (sealed): kept only ``personal_retention_h``, also once they exist.
PERSONAL_TOPICS = tuple(topics.KAFKA_TOPICS[kind] for kind in sorted(topics.PERSONAL_KINDS))


def topic_configs(settings: KafkaSettings) -> dict[str, dict[str, str]]:
    events = {"retention.ms": str(7 * DAY_MS), "max.message.bytes": str(2 * 1024 * 1024)}
    configs = {name: dict(events) for name in topics.KAFKA_TOPICS.values()}
    personal = int(settings.personal_retention_h * 3600 * 1000)
    for name in PERSONAL_TOPICS:
        configs[name]["retention.ms"] = str(personal)
    configs.update({name: dict(events) for name in topics.KAFKA_URGENT.values()})
    configs[topics.KAFKA_ALERTS] = {"retention.ms": str(90 * DAY_MS)}
    configs[topics.KAFKA_DEAD_LETTERS] = {"retention.ms": str(30 * DAY_MS)}
    configs[topics.KAFKA_GAS_TICKS] = {"retention.ms": str(DAY_MS)}
    configs[topics.KAFKA_HOTEL_TICKS] = {"retention.ms": str(DAY_MS)}
    configs[topics.KAFKA_SITE_ALARMS] = {"retention.ms": str(7 * DAY_MS)}
    configs[topics.KAFKA_COOLDOWN_SWEEP] = {"retention.ms": str(DAY_MS)}
    configs[topics.KAFKA_SNAPSHOTS] = {"retention.ms": str(DAY_MS), "max.message.bytes": str(2 * 1024 * 1024)}
    configs[topics.KAFKA_MOTION] = {"retention.ms": str(30 * DAY_MS)}
    for name in (topics.KAFKA_WATCHLIST_VEHICLES, topics.KAFKA_WATCHLIST_PERSONS):
        configs[name] = {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}
    configs[topics.KAFKA_METRICS] = {"retention.ms": str(7 * DAY_MS)}  # the backlog while InfluxDB is down
    configs[topics.KAFKA_AUDIT] = {"retention.ms": "-1"}  # the audit trail is kept
    configs[topics.KAFKA_AUDIT_REQUESTS] = {"retention.ms": str(30 * DAY_MS)}  # until chained (and a while)
    configs[topics.KAFKA_TOPICS[topics.MessageKind.FRAME]]["retention.ms"] = str(DAY_MS)
    return configs


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a keyed record (murmur2, as the Java client and
    aiokafka place it), for a topic of ``partitions`` partitions."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def client_args(settings: KafkaSettings) -> dict:
    """Connection arguments every aiokafka client of the project takes: brokers and security."""
    args: dict = {"bootstrap_servers": settings.bootstrap, "security_protocol": settings.security_protocol}
    if settings.security_protocol.startswith("SASL"):
        args |= {"sasl_mechanism": settings.sasl_mechanism, "sasl_plain_username": settings.sasl_username,
                 "sasl_plain_password": settings.sasl_password.get_secret_value() if settings.sasl_password else None}
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        args["ssl_context"] = ssl_context(settings)
    return args


def ssl_context(settings: KafkaSettings):
    from aiokafka.helpers import create_ssl_context

    return create_ssl_context(cafile=str(settings.ssl_ca_file) if settings.ssl_ca_file else None,
                              certfile=str(settings.ssl_cert_file) if settings.ssl_cert_file else None,
                              keyfile=str(settings.ssl_key_file) if settings.ssl_key_file else None)


def faust_credentials(settings: KafkaSettings):
    """The same security as Faust's ``broker_credentials`` (None: plaintext)."""
    import faust

    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password.get_secret_value() if settings.sasl_password else None,
            mechanism=settings.sasl_mechanism,
            ssl_context=ssl_context(settings) if settings.security_protocol == "SASL_SSL" else None)
    if settings.security_protocol == "SSL":
        return faust.SSLCredentials(ssl_context(settings))
    return None


async def ensure_topics(settings: KafkaSettings) -> list[str]:
    """Create missing topics; return the names created."""
    admin = AIOKafkaAdminClient(**client_args(settings), client_id="safecity-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        configs = topic_configs(settings)
        wanted = [NewTopic(name, settings.partitions, settings.replication, topic_configs=cfg)
                  for name, cfg in configs.items() if name not in existing]
        personal = [ConfigResource(ConfigResourceType.TOPIC, name, configs[name])
                    for name in PERSONAL_TOPICS if name in existing]
        if personal:  # the retention setting holds for a topic created before it changed, too
            await admin.alter_configs(personal)
        if wanted:
            try:
                await admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass  # another process created them first
            logger.info("created Kafka topics: %s", ", ".join(t.name for t in wanted))
        return [t.name for t in wanted]
    finally:
        await admin.close()


TOPIC_OVERRIDE = 1  # DescribeConfigs' config_source: set on the topic (DYNAMIC_TOPIC_CONFIG)


def _overrides(response, name: str) -> dict[str, str]:
    """A topic's own settings (not the broker's defaults) from a DescribeConfigs response."""
    for resource in response.resources:
        if resource[3] != name:
            continue
        if resource[0]:
            raise RuntimeError(f"describing topic {name}: error {resource[0]} {resource[1]}")
        if response.API_VERSION == 0:  # (name, value, read_only, is_default, is_sensitive)
            return {e[0]: e[1] for e in resource[4] if not e[3]}
        return {e[0]: e[1] for e in resource[4] if e[3] == TOPIC_OVERRIDE}  # (name, value, read_only, source, ...)
    return {}


async def align_topics(settings: KafkaSettings, names: list[str], wanted: dict[str, str]) -> dict[str, dict[str, str]]:
    """Give the topics ``names`` that exist already the settings ``wanted``, keeping the others they have
    (compaction among them: Kafka's AlterConfigs replaces a topic's whole set). For the tables' changelogs:
    Faust sets their settings only when it creates them, so a stack created before a change of
    ``CHANGELOG_TOPIC_CONFIG`` kept the old ones. Returns, per topic altered, what it had before."""
    admin = AIOKafkaAdminClient(**client_args(settings), client_id="safecity-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        altered: dict[str, dict[str, str]] = {}
        for name in sorted(n for n in set(names) if n in existing):
            [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
            have = _overrides(response, name)
            if all(have.get(k) == v for k, v in wanted.items()):
                continue
            for response in await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, have | wanted)]):
                for error, message, *_ in getattr(response, "resources", []):
                    if error:
                        raise RuntimeError(f"altering topic {name}: error {error} {message}")
            altered[name] = {k: have.get(k, "(broker default)") for k in wanted}
            logger.info("topic %s: %s", name, ", ".join(f"{k} {altered[name][k]} -> {v}" for k, v in wanted.items()))
        return altered
    finally:
        await admin.close()
