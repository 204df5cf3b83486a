"""Alerts (notified once each), operator feedback, dead-letter counts."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import faust

from models import schemas, topics
from models.schemas import Alert, SchemaError
from processors.context import STAGE, Context
from processors.rules import metrics, notify, watch_alerts

logger = logging.getLogger(__name__)


def register(ctx: Context) -> None:
    app = ctx.app
    notified = ctx.table("alerts-notified")
    alert_last = ctx.table("alert-last")
    feedback_topic = ctx.topic(topics.KAFKA_FEEDBACK)

    @app.agent(ctx.alerts_topic, name="alerts")
    async def alert_transitions(stream: faust.StreamT) -> None:
        async for raw in stream:
            alert = await ctx.decode(Alert, raw, topics.KAFKA_ALERTS)
            if alert is None:
                continue
            key = alert.alert_id.encode()
            last = notified.get(key)
            publisher = app.output("alerts")
            if notify.should_notify(last.decode() if last else None, alert) and \
                    not await publisher.already_published(alert):
                await publisher.publish(alert)
                ctx.sink().add(metrics.alert_points(alert))
                logger.info("alert %s %s for %s", alert.type, alert.state.value, alert.device_id)
            else:
                logger.info("alert %s %s already notified; replay skipped", alert.type, alert.state.value)
            notified[key] = notify.position(alert).encode()
            alert_last[key] = raw

    @app.agent(feedback_topic, name="alert-feedback")
    async def alert_feedback(stream: faust.StreamT) -> None:
        async for raw in stream:
            fb = await ctx.decode(schemas.AlertFeedback, raw, topics.KAFKA_FEEDBACK)
            if fb is None:
                continue
            stored = alert_last.get(fb.alert_id.encode())
            if stored is None:
                logger.warning("feedback for an unknown alert; counted only")
                ctx.sink().add(metrics.feedback_points("unknown", "", fb.decision.value, fb.at))
                continue
            alert = schemas.decode_as(Alert, stored)
            ctx.sink().add(metrics.feedback_points(alert.type, str(alert.details.get("match", "")),
                                                   fb.decision.value, fb.at))
            if watch_alerts.closes(alert, fb.decision.value):
                await ctx.send_alerts([watch_alerts.decided(alert, fb.decision.value, fb.reason, fb.by, fb.at)])

    @app.agent(ctx.dead_letter_topic, name="dead-letters")
    async def dead_letters(stream: faust.StreamT) -> None:
        async for raw in stream:
            try:
                dl = schemas.decode_as(schemas.DeadLetter, raw)
            except SchemaError as exc:  # a dead letter about a dead letter would loop: count it only
                logger.error("unreadable dead letter (%s); counted and skipped", exc.code)
                dl = schemas.dead_letter(STAGE, "unreadable-dead-letter", str(exc), topics.KAFKA_DEAD_LETTERS,
                                         raw or b"", datetime.now(UTC))
            ctx.sink().add(metrics.dead_letter_points(dl))
