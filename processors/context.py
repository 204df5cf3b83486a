"""What every agent module shares: the app, its topics and tables, decoding with dead letters,
alert sending, the metric sink, the device registry. Built once by ``create_app``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import faust
import msgspec

from deploy.keys import sealer as make_sealer
from models import schemas, topics
from models.schemas import Alert, SchemaError
from models.sealed import Sealer, SealError
from models.settings import Settings
from models.topics import MessageKind
from processors.rules import metrics
from processors.sinks import MetricSink
from safecity.registry import RegistryFile

logger = logging.getLogger(__name__)
STAGE = "processor"
#: The tables' changelog topics (compacted, as Faust makes them) roll a segment every 4 MiB instead of
#: the broker's 128, and are cleaned once a fifth of them is superseded records (Kafka's default: half).
#: Compaction never touches the segment being written, so a worker that takes over a partition without
#: its state (a new worker joining) reads all of that back before the partition's events go on. In the
#: pipeline benchmark at 3,250 readings/s a moved partition waited 36 s (5.7-49.6) with 128 MiB, 9.7 s
#: with 8 MiB, 5.2 s (3.9-7.3) with this; Kafka's CPU per reading went from about 0.03 to 0.04 ms.
#: Faust sets it when it creates the topic; a worker's start sets it on those that exist already
#: (``deploy.kafka_topics.align_topics``, logged per topic it changes).
CHANGELOG_TOPIC_CONFIG = {"segment.bytes": str(4 * 1024 * 1024), "min.cleanable.dirty.ratio": "0.2"}
S = TypeVar("S")


class StructTable(Generic[S]):
    """A Faust table of msgspec structs keyed by str (stored as JSON bytes).

    With ``cached``, the structs read and written are also kept decoded in memory (at most
    ``CACHE_MAX``), so a key's next event skips the store read (RocksDB) and the decoding: for rules
    that never change their input state (each gas rule step starts from a copy, ``rules/gas._own``).
    The cache is dropped whenever partitions move, since recovery writes to the store directly."""

    CACHE_MAX = 200_000

    def __init__(self, table: faust.Table, struct: type[S], app: Any = None, cached: bool = False) -> None:
        self.table, self.struct = table, struct
        self.cache: dict[str, S] | None = {} if cached else None
        if cached:
            app.on_partitions_revoked.connect(self._drop_cache)
            app.on_rebalance_complete.connect(self._drop_cache)

    async def _drop_cache(self, *args: Any, **kwargs: Any) -> None:
        if self.cache is not None:
            self.cache.clear()

    def get(self, key: str) -> S:
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            return hit
        stored = self.table.get(key.encode())
        value = msgspec.json.decode(stored, type=self.struct) if stored else self.struct()
        if stored and self.cache is not None:
            self._keep(key, value)
        return value

    def set(self, key: str, value: S) -> None:
        self.table[key.encode()] = msgspec.json.encode(value)
        if self.cache is not None:
            self._keep(key, value)

    def _keep(self, key: str, value: S) -> None:
        assert self.cache is not None
        if len(self.cache) >= self.CACHE_MAX and key not in self.cache:
            self.cache.clear()  # a city bigger than the cache: start again (reads fall back to the store)
        self.cache[key] = value

    def __contains__(self, key: str) -> bool:
        return key.encode() in self.table

    def items(self) -> list[tuple[str, S]]:
        return [(k.decode(), msgspec.json.decode(v, type=self.struct)) for k, v in list(self.table.items())]


class PlacedSink:
    """The metric sink, with each point tagged with its device's district, site and grid cell."""

    def __init__(self, inner: MetricSink, registry: RegistryFile) -> None:
        self.inner, self.registry = inner, registry

    def _place(self, device: str) -> dict[str, str] | None:
        entry = self.registry.get(device)  # re-reads the file when a device is new to this worker
        return metrics.place_tags(entry) if entry is not None else None

    def add(self, points: list[metrics.MetricPoint]) -> None:
        self.inner.add(metrics.with_place(points, self._place))

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()


@dataclass
class Context:
    app: Any  # SafeCityApp
    settings: Settings
    registry: RegistryFile
    alerts_topic: faust.TopicT = field(init=False)
    dead_letter_topic: faust.TopicT = field(init=False)
    event_topics: dict[MessageKind, faust.TopicT] = field(init=False)
    sealer: Sealer = field(init=False)
    _placed: MetricSink | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.sealer = make_sealer(self.settings)
        self.alerts_topic = self.topic(topics.KAFKA_ALERTS)
        self.dead_letter_topic = self.topic(topics.KAFKA_DEAD_LETTERS)
        self.event_topics = {kind: self.topic(name) for kind, name in topics.KAFKA_TOPICS.items()}

    def topic(self, name: str) -> faust.TopicT:
        return self.app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    @property
    def batched(self) -> bool:
        return self.settings.worker.changelog_batches

    def table(self, name: str) -> faust.Table:
        kwargs = {"key_type": bytes, "value_type": bytes, "partitions": self.settings.kafka.partitions,
                  "extra_topic_configs": CHANGELOG_TOPIC_CONFIG}
        if self.batched:  # changelog records sent in batches per partition (processors/changelog.py)
            return self.app.changelogs.table(name, **kwargs)
        return self.app.Table(name, **kwargs)

    def struct_table(self, name: str, struct: type[S], cached: bool = False) -> StructTable[S]:
        return StructTable(self.table(name), struct, self.app, cached)

    def sink(self) -> MetricSink:
        if self._placed is None:
            self._placed = PlacedSink(self.app.output("metrics"), self.registry)
        return self._placed

    async def dead_letter(self, code: str, reason: str, source: str, raw: bytes, sealed: bool = False) -> None:
        dl = schemas.dead_letter(STAGE, code, reason, source, raw or b"", datetime.now(UTC))
        if sealed:
            dl = msgspec.structs.replace(dl, sealed=True)
        await self.dead_letter_topic.send(key=source.encode(), value=schemas.encode(dl))
        logger.warning("dead letter %s from %s", code, source)

    async def decode(self, kind: MessageKind | type, raw: bytes, source: str | None = None) -> Any | None:
        """Validate a Kafka value against its schema; a bad one becomes a dead letter (None)."""
        source = source or (topics.KAFKA_TOPICS[kind] if isinstance(kind, MessageKind) else "")
        try:
            if isinstance(kind, MessageKind):
                return schemas.decode_event(kind, raw)
            return schemas.decode_as(kind, raw)
        except SchemaError as exc:
            await self.dead_letter(exc.code, str(exc), source, raw)
            return None

    async def decode_record(self, kind: MessageKind, raw: bytes, source: str | None = None) -> list[Any]:
        """A record's valid events: one, or a pack's (``topics.PACKED_KINDS``), in order; a pack that
        does not parse, and each element that does not fit its schema, becomes a dead letter (from
        ``source``: the kind's topic unless said)."""
        source = source or topics.KAFKA_TOPICS[kind]
        try:
            values = schemas.unpack(raw or b"")
        except SchemaError as exc:
            await self.dead_letter(exc.code, str(exc), source, raw)
            return []
        events = []
        for value in values:
            event = await self.decode(kind, value, source)
            if event is not None:
                events.append(event)
        return events

    async def decode_sealed(self, kind: MessageKind, key: bytes | None, raw: bytes) -> Any | None:
        """Open a sealed record (models/sealed.py) and validate it; one that does not open, or does not
        fit its schema, becomes a dead letter keeping the sealed value (never the opened one)."""
        source = topics.KAFKA_TOPICS[kind]
        try:
            opened = self.sealer.open(raw or b"", source, key or b"")
            return schemas.decode_event(kind, opened)
        except SealError as exc:
            await self.dead_letter("sealed-unopenable", str(exc), source, raw or b"", sealed=True)
        except SchemaError as exc:
            await self.dead_letter(exc.code, str(exc), source, raw or b"", sealed=True)
        return None

    async def send_alerts(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            await self.alerts_topic.send(key=alert.alert_id.encode(), value=schemas.encode(alert))

    def periodic_check(self, name: str, every_s: float, candidates: Callable[[datetime], list[str]]) -> faust.TopicT:
        """Silence checks: a timer scans this worker's keys read-only and sends each due key a check
        event on its own partition, where an agent may change the table (Faust tables change only
        inside a stream). Returns the check topic for that agent."""
        check_topic = self.topic(name)

        async def scan() -> None:
            now = datetime.now(UTC)
            for key in candidates(now):
                await check_topic.send(key=key.encode(), value=now.isoformat().encode())

        scan.__name__ = scan.__qualname__ = f"scan_{name.replace('.', '_').replace('-', '_')}"
        self.app.timer(interval=every_s)(scan)
        return check_topic


