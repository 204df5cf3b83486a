"""Camera images: snapshot intake, per-camera health, motion events."""

from __future__ import annotations

import faust
import msgspec

from models import schemas, topics
from models.topics import MessageKind
from processors.context import Context
from processors.imaging import ImageWorker
from processors.rules import camera, metrics


REFERENCE_EVERY = 25


class CameraAgents:
    """One owner per camera: frames and checkpoint snapshots arrive keyed by camera id on two
    co-partitioned topics, so a camera's state and reference view live on one partition."""

    def __init__(self, ctx: Context) -> None:
        c = ctx.settings.camera
        self.ctx = ctx
        self.cfg = camera.CameraConfig(bad_frames=c.bad_frames, good_frames=c.good_frames, frozen_s=c.frozen_s)
        self.state = ctx.struct_table("camera-state", camera.CameraState)
        # The learnt reference view (~25 KB) changes slowly: it is stored apart, while it is being
        # learnt and then every REFERENCE_EVERY healthy frames, not with every frame's small state.
        self.references = ctx.table("camera-reference")
        self.motion_topic = ctx.topic(topics.KAFKA_MOTION)
        self.snapshot_topic = ctx.topic(topics.KAFKA_SNAPSHOTS)
        self.images = ImageWorker(ctx.settings.background_nice)  # decoding and checks in a process of their own
        ctx.app.outputs["images"] = self.images

    async def snapshot(self, read: schemas.PlateRead) -> None:
        """A plate read's snapshot is a look at its camera: on to the camera's own partition."""
        frame = schemas.CameraFrame(camera_id=read.camera_id, seq=0, captured_at=read.captured_at,
                                    image=read.snapshot_jpeg, checkpoint_id=read.checkpoint_id)
        await self.snapshot_topic.send(key=read.camera_id.encode(), value=schemas.encode(frame))

    async def analyse(self, frame: schemas.CameraFrame, source: str, motion: bool) -> None:
        ctx, camera_id = self.ctx, frame.camera_id
        before = self.state.get(camera_id)
        before.reference = self.references.get(camera_id.encode())
        result = await self.images.analyse(before, camera_id, frame.image, frame.captured_at, self.cfg, motion)
        if result.error is not None:
            await ctx.dead_letter(result.error[0], f"camera {camera_id}: {result.error[1]}", source, frame.image)
            return
        state = result.state
        if state.reference_count != before.reference_count and (
                state.reference_count <= self.cfg.reference_frames or state.reference_count % REFERENCE_EVERY == 0):
            self.references[camera_id.encode()] = state.reference
        self.state.set(camera_id, msgspec.structs.replace(state, reference=None))
        entry = ctx.registry.get(camera_id) or (ctx.registry.get(frame.checkpoint_id) if frame.checkpoint_id else None)
        ctx.sink().add(metrics.camera_points(camera_id, entry.district if entry else None, result.scores,
                                             result.problems, frame.captured_at))
        await ctx.send_alerts(result.alerts)
        for state_name, at, boxes, area in result.motion:
            event = schemas.MotionEvent(camera_id=camera_id, state=state_name, at=at, boxes=boxes, area=area)
            await self.motion_topic.send(key=camera_id.encode(), value=schemas.encode(event))
            ctx.sink().add(metrics.motion_points(event))


def register(ctx: Context) -> CameraAgents:
    cams = CameraAgents(ctx)
    frames, snapshots = topics.KAFKA_TOPICS[MessageKind.FRAME], topics.KAFKA_SNAPSHOTS
    both = ctx.app.topic(frames, snapshots, key_type=bytes, value_type=bytes, key_serializer="raw",
                         value_serializer="raw")

    @ctx.app.agent(both, name="camera-images")
    async def camera_images(stream: faust.StreamT) -> None:
        async for event in stream.events():
            source = event.message.topic
            frame = await ctx.decode(MessageKind.FRAME, event.value, source)
            if frame is not None:
                await cams.analyse(frame, source, motion=source == frames and ctx.settings.camera.motion)

    return cams
