"""Image work off the event loop: decoding, health checks and motion run in a worker process, so a
burst of snapshots never holds up the worker's other agents (gas alarms, watch lists, alerts).

One process (spawned, so it shares no threads or sockets with the worker): the camera agent sends
it the frame bytes and the camera's state and gets the new state, alerts, health and motion
events back; the motion trackers (per-camera background models) live in that process. It runs at a
lower CPU priority (``background_nice``, 10): on a busy machine image analysis yields the cores to the alarm path.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from models.schemas import Alert
from processors.rules import camera
from processors.rules import image as image_rules
from safecity.priority import lower_priority

_trackers: dict = {}  # in the image process: camera id -> MotionTracker


@dataclass
class Analysis:
    state: camera.CameraState | None = None
    alerts: list[Alert] | None = None
    scores: dict | None = None
    problems: list[str] | None = None
    motion: list[tuple[str, datetime, list[tuple[int, int, int, int]], float]] | None = None
    error: tuple[str, str] | None = None  # (reason code, message): the image is refused


def analyse(state: camera.CameraState, camera_id: str, data: bytes, at: datetime, cfg: camera.CameraConfig,
            motion: bool) -> Analysis:
    """Runs in the image process: decode reduced (analytics work at ~640 px), check, track motion."""
    from processors.rules.motion import MotionTracker

    try:
        frame = image_rules.decode_image(data, min_side=image_rules.WORK_WIDTH)
        scale = image_rules.image_header(data)[1] / frame.shape[1]
    except image_rules.ImageError as exc:
        return Analysis(error=(exc.code, str(exc)))
    new, alerts, health = camera.observe(state, camera_id, frame, at, cfg)
    events = []
    if motion:
        _, found = _trackers.setdefault(camera_id, MotionTracker()).update(frame, at)
        events = [(ev.state, ev.at, [tuple(round(v * scale) for v in b) for b in ev.boxes], round(ev.area, 4))
                  for ev in found]
    return Analysis(new, alerts, health.scores, list(health.problems), events)


class ImageWorker:
    def __init__(self, nice: int = 10) -> None:
        self.nice = nice  # the image process's CPU priority: image analysis waits, alarms do not
        self.pool: ProcessPoolExecutor | None = None

    async def analyse(self, *args) -> Analysis:
        if self.pool is None:
            self.pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=lower_priority, initargs=(self.nice,))
        return await asyncio.get_running_loop().run_in_executor(self.pool, analyse, *args)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
