"""Motion detection the way proven NVRs do it: grey, downscale, blur, running-average background,
absolute difference, threshold, dilate, contours above a minimum area; recalibrate when most of
the frame changes at once (lightning, headlights, the camera's own exposure jump); optional masks.

``MotionDetector.detect`` finds boxes in one frame; ``MotionTracker`` turns per-frame results into
motion-start and motion-end events with hysteresis. State lives in memory (numpy arrays), so a
restarted worker relearns the background in a few frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x, y, w, h in the original frame's pixels


@dataclass(frozen=True)
class MotionConfig:
    height: int = 120  # detection resolution (rows); width follows the aspect ratio
    blur: int = 5  # Gaussian kernel (odd)
    threshold: int = 25  # grey-level difference that counts as change
    alpha: float = 0.05  # background learning rate
    absorb: float = 0.3  # learning rate where the view changed but nothing moves
    dilate: int = 2
    min_area: float = 0.002  # smallest box, as a share of the frame
    recalibrate: float = 0.5  # share of changed pixels that means 'the light changed', not motion
    start_frames: int = 2
    end_frames: int = 5


@dataclass(frozen=True)
class MotionResult:
    boxes: list[Box]
    area: float  # share of the frame in motion
    recalibrated: bool = False


class MotionDetector:
    def __init__(self, cfg: MotionConfig = MotionConfig(), mask: np.ndarray | None = None) -> None:
        """``mask``: optional uint8 array (any size, resized), 0 where motion is ignored."""
        self.cfg = cfg
        self.mask_src = mask
        self.mask: np.ndarray | None = None
        self.background: np.ndarray | None = None
        self.previous: np.ndarray | None = None
        self.scale = 1.0

    def _prepare(self, frame: np.ndarray) -> np.ndarray:
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        h, w = gray.shape
        self.scale = h / self.cfg.height
        small = cv2.resize(gray, (max(1, round(w / self.scale)), self.cfg.height), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (self.cfg.blur, self.cfg.blur), 0)
        if self.mask_src is not None and (self.mask is None or self.mask.shape != small.shape):
            self.mask = cv2.resize(self.mask_src, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_NEAREST)
        return small

    def detect(self, frame: np.ndarray) -> MotionResult:
        small = self._prepare(frame)
        previous, self.previous = self.previous, small
        if self.background is None or self.background.shape != small.shape or previous is None:
            self.background = small.astype(np.float32)
            return MotionResult([], 0.0)
        cfg = self.cfg
        _, changed = cv2.threshold(cv2.absdiff(small, cv2.convertScaleAbs(self.background)), cfg.threshold, 255,
                                   cv2.THRESH_BINARY)
        if self.mask is not None:
            changed = cv2.bitwise_and(changed, changed, mask=self.mask)
        if np.count_nonzero(changed) / changed.size > cfg.recalibrate:  # the light changed: start over
            self.background = small.astype(np.float32)
            return MotionResult([], 0.0, recalibrated=True)
        # Moving = differs from the background *and* near something that changed since the last
        # frame: a parked car or a moved chair differs from the background but is still, and is
        # absorbed into it quickly instead of being reported (and ghosting) for many frames.
        _, flicker = cv2.threshold(cv2.absdiff(small, previous), cfg.threshold // 2, 255, cv2.THRESH_BINARY)
        near = cv2.dilate(flicker, None, iterations=cfg.dilate + 3)
        moving = cv2.dilate(cv2.bitwise_and(changed, near), None, iterations=cfg.dilate)
        contours, _ = cv2.findContours(moving, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        min_px = cfg.min_area * moving.size
        boxes, area = [], 0.0
        for contour in contours:
            if cv2.contourArea(contour) < min_px:
                continue
            x, y, w, h = cv2.boundingRect(contour)
            area += w * h
            boxes.append((round(x * self.scale), round(y * self.scale), round(w * self.scale), round(h * self.scale)))
        still_change = cv2.bitwise_and(changed, cv2.bitwise_not(moving))
        frame32 = small.astype(np.float32)
        cv2.accumulateWeighted(frame32, self.background, cfg.alpha)
        cv2.accumulateWeighted(frame32, self.background, cfg.absorb, mask=still_change)
        return MotionResult(boxes, min(1.0, area / moving.size))


@dataclass
class MotionEvent:
    state: str  # "start" | "end"
    at: datetime
    boxes: list[Box]
    area: float  # start: area of the starting frame; end: peak area during the event


@dataclass
class MotionTracker:
    cfg: MotionConfig = field(default_factory=MotionConfig)
    detector: MotionDetector | None = None
    active_since: datetime | None = None
    moving: int = 0
    still: int = 0
    peak: float = 0.0

    def __post_init__(self) -> None:
        self.detector = self.detector or MotionDetector(self.cfg)

    def update(self, frame: np.ndarray, at: datetime) -> tuple[MotionResult, list[MotionEvent]]:
        result = self.detector.detect(frame)
        events: list[MotionEvent] = []
        if result.boxes:
            self.moving, self.still = self.moving + 1, 0
            self.peak = max(self.peak, result.area)
            if self.active_since is None and self.moving >= self.cfg.start_frames:
                self.active_since = at
                events.append(MotionEvent("start", at, result.boxes, result.area))
        else:
            self.moving, self.still = 0, self.still + 1
            if self.active_since is not None and self.still >= self.cfg.end_frames:
                events.append(MotionEvent("end", at, [], self.peak))
                self.active_since, self.peak = None, 0.0
        return result, events
