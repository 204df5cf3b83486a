"""Camera images: snapshot intake, per-camera health, motion events."""

from __future__ import annotations

from datetime import datetime

import faust
import msgspec

from models import schemas, topics
from models.topics import MessageKind
from processors.context import Context
from processors.rules import camera, metrics
from processors.rules import image as image_rules
from processors.rules.motion import MotionTracker


REFERENCE_EVERY = 25


class CameraAgents:
    def __init__(self, ctx: Context) -> None:
        c = ctx.settings.camera
        self.ctx = ctx
        self.cfg = camera.CameraConfig(bad_frames=c.bad_frames, good_frames=c.good_frames, frozen_s=c.frozen_s)
        self.state = ctx.struct_table("camera-state", camera.CameraState)
        # The learnt reference view (~25 KB) changes slowly: it is stored apart, while it is being
        # learnt and then every REFERENCE_EVERY healthy frames, not with every frame's small state.
        self.references = ctx.table("camera-reference")
        self.motion_topic = ctx.topic(topics.KAFKA_MOTION)
        self.trackers: dict[str, MotionTracker] = {}  # motion backgrounds live in memory, relearnt after a restart

    async def analyse(self, camera_id: str, device_id: str, data: bytes, at: datetime, source: str,
                      motion: bool = False) -> None:
        ctx = self.ctx
        try:  # analytics work at ~640 px: large JPEGs are decoded reduced, in the DCT
            frame = image_rules.decode_image(data, min_side=image_rules.WORK_WIDTH)
            scale = image_rules.image_header(data)[1] / frame.shape[1]
        except image_rules.ImageError as exc:
            await ctx.dead_letter(exc.code, f"camera {camera_id}: {exc}", source, data)
            return
        before = self.state.get(camera_id)
        before.reference = self.references.get(camera_id.encode())
        state, alerts, health = camera.observe(before, camera_id, frame, at, self.cfg)
        if state.reference_count != before.reference_count and (
                state.reference_count <= self.cfg.reference_frames or state.reference_count % REFERENCE_EVERY == 0):
            self.references[camera_id.encode()] = state.reference
        self.state.set(camera_id, msgspec.structs.replace(state, reference=None))
        entry = ctx.registry.get(camera_id) or ctx.registry.get(device_id)
        ctx.sink().add(metrics.camera_points(camera_id, entry.district if entry else None, health.scores,
                                             health.problems, at))
        await ctx.send_alerts(alerts)
        if motion:
            _, events = self.trackers.setdefault(camera_id, MotionTracker()).update(frame, at)
            for ev in events:
                boxes = [tuple(round(v * scale) for v in b) for b in ev.boxes]  # in the camera's pixels
                event = schemas.MotionEvent(camera_id=camera_id, state=ev.state, at=ev.at, boxes=boxes,
                                            area=round(ev.area, 4))
                await self.motion_topic.send(key=camera_id.encode(), value=schemas.encode(event))
                ctx.sink().add(metrics.motion_points(event))


def register(ctx: Context) -> CameraAgents:
    cams = CameraAgents(ctx)

    @ctx.app.agent(ctx.event_topics[MessageKind.FRAME], name="camera-frames")
    async def camera_frames(stream: faust.StreamT) -> None:
        async for raw in stream:
            frame = await ctx.decode(MessageKind.FRAME, raw)
            if frame is not None:
                await cams.analyse(frame.camera_id, frame.camera_id, frame.image, frame.captured_at,
                                   topics.KAFKA_TOPICS[MessageKind.FRAME], motion=ctx.settings.camera.motion)

    return cams
