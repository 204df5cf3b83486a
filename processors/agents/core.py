"""Dead-letter counts. Alert transitions leave the worker on ``safecity.alerts.v1`` (keyed by alert
id); what happens to an alert after that (its record, acknowledgements, notifications, MQTT state)
belongs to the alert service (``alerting/``), which reads that topic."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import faust

from models import schemas, topics
from models.schemas import SchemaError
from processors.context import STAGE, Context
from processors.rules import metrics

logger = logging.getLogger(__name__)


def register(ctx: Context) -> None:
    @ctx.app.agent(ctx.dead_letter_topic, name="dead-letters")
    async def dead_letters(stream: faust.StreamT) -> None:
        async for raw in stream:
            try:
                dl = schemas.decode_as(schemas.DeadLetter, raw)
            except SchemaError as exc:  # a dead letter about a dead letter would loop: count it only
                logger.error("unreadable dead letter (%s); counted and skipped", exc.code)
                dl = schemas.dead_letter(STAGE, "unreadable-dead-letter", str(exc), topics.KAFKA_DEAD_LETTERS,
                                         raw or b"", datetime.now(UTC))
            ctx.sink().add(metrics.dead_letter_points(dl))
