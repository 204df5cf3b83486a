"""Per-camera health with hysteresis: one bad frame does not alert, ``bad_frames`` consecutive
bad frames do, and ``good_frames`` consecutive good frames clear. Also learns each camera's
reference view from its first healthy frames (for scene-changed) and finds frozen images.

Problems map to alerts: occlusion, signal loss and a changed scene -> ``camera-tampered``;
blur -> ``camera-blurred``; dark, over-exposed, low contrast -> ``camera-image-quality``;
frozen -> ``camera-frozen``. A frame with a tamper problem counts only towards
``camera-tampered`` (a covered lens is also dark; that is not news).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from datetime import datetime

import cv2
import msgspec
import numpy as np

from models import alerts as alert_types
from models.schemas import Alert, AlertState
from processors.rules import image as im

ALERT_FOR = {"occlusion": "camera-tampered", "signal-loss": "camera-tampered", "scene-changed": "camera-tampered",
             "blur": "camera-blurred", "dark": "camera-image-quality", "overexposed": "camera-image-quality",
             "low-contrast": "camera-image-quality", "frozen": "camera-frozen"}
CAMERA_ALERTS = ("camera-tampered", "camera-frozen", "camera-blurred", "camera-image-quality")


@dataclass(frozen=True)
class CameraConfig:
    bad_frames: int = 3
    good_frames: int = 3
    frozen_s: float = 60.0
    frozen_diff: float = 0.6  # mean absolute difference (grey levels) below which frames are the same
    reference_frames: int = 5  # healthy frames averaged into the reference view
    reference_rate: float = 0.02  # afterwards, how fast healthy frames refresh it (seasons, foliage)
    thresholds: im.Thresholds = im.DEFAULTS


class CameraState(msgspec.Struct):
    streak: dict[str, int] = {}  # alert type -> consecutive frames with it
    good: dict[str, int] = {}  # alert type -> consecutive frames without it, while firing
    firing: dict[str, datetime] = {}
    reference: bytes | None = None  # float16 gradient fingerprint
    reference_count: int = 0
    flat_baseline: float = 0.0  # this view's usual featureless share (a smooth wall or road is normal)
    sharp_baseline: float = 0.0  # this camera's usual sharpness (lens, compression)
    thumb: bytes | None = None  # last frame's central 64x64 grey pixels, at full resolution
    same_since: datetime | None = None
    last_at: datetime | None = None


def _thumb(image: np.ndarray) -> np.ndarray:
    """The central 64x64 pixels at full resolution: a live camera's sensor noise changes them
    every frame (downscaling would average the noise away and make a still scene look frozen)."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    h, w = gray.shape
    y, x = max(0, h // 2 - 32), max(0, w // 2 - 32)
    crop = np.zeros((64, 64), np.uint8)
    part = gray[y:y + 64, x:x + 64]
    crop[: part.shape[0], : part.shape[1]] = part
    return crop


def _reference(state: CameraState) -> np.ndarray | None:
    if state.reference is None:
        return None
    return np.frombuffer(state.reference, np.float16).astype(np.float32).reshape(im.REF_SIZE[1], im.REF_SIZE[0])


def observe(state: CameraState, camera_id: str, image: np.ndarray, at: datetime,
            cfg: CameraConfig = CameraConfig()) -> tuple[CameraState, list[Alert], im.Health]:
    """Apply one frame: return the new state, alert transitions and the frame's health."""
    s = copy.deepcopy(state)
    learnt = s.reference_count >= cfg.reference_frames
    ref = _reference(s) if learnt else None
    health = im.check(image, ref, _thresholds(s, cfg, learnt))
    problems = list(health.problems)

    thumb = _thumb(image)
    if s.thumb is not None and s.last_at is not None:
        diff = float(np.abs(thumb.astype(np.int16) - np.frombuffer(s.thumb, np.uint8).reshape(64, 64)).mean())
        health.scores["frame_change"] = round(diff, 3)
        if diff < cfg.frozen_diff:
            s.same_since = s.same_since or s.last_at
            if (at - s.same_since).total_seconds() >= cfg.frozen_s:
                problems.append("frozen")
        else:
            s.same_since = None
    s.thumb, s.last_at = thumb.tobytes(), at

    if not problems:
        _learn_reference(s, image, health, cfg)

    types = {ALERT_FOR[p] for p in problems}
    if "camera-tampered" in types:
        types = {"camera-tampered"}  # a covered or lost view is also dark, flat and unchanging
    alerts: list[Alert] = []
    for alert_type in CAMERA_ALERTS:
        if alert_type in types:
            s.streak[alert_type] = s.streak.get(alert_type, 0) + 1
            s.good.pop(alert_type, None)
            if alert_type not in s.firing and s.streak[alert_type] >= cfg.bad_frames:
                s.firing[alert_type] = at
                why = sorted(p for p in problems if ALERT_FOR[p] == alert_type)
                alerts.append(_alert(camera_id, alert_type, AlertState.FIRING, at, at, why, health))
        else:
            s.streak.pop(alert_type, None)
            if alert_type in s.firing:
                s.good[alert_type] = s.good.get(alert_type, 0) + 1
                if s.good[alert_type] >= cfg.good_frames:
                    alerts.append(_alert(camera_id, alert_type, AlertState.CLEARED, s.firing.pop(alert_type), at,
                                         [], health))
                    s.good.pop(alert_type)
    health.problems = problems
    return s, alerts, health


def _thresholds(s: CameraState, cfg: CameraConfig, learnt: bool) -> im.Thresholds:
    """Occlusion and blur judged against this camera's own healthy view once it is learnt (a view
    of smooth walls is not 'occluded', a soft lens not 'blurred'); lenient while learning, so
    only a nearly total cover or a grossly blurred image counts then."""
    t = cfg.thresholds
    if not learnt:
        return replace(t, occlusion=0.95, blur=t.blur * 0.6)
    return replace(t, occlusion=min(0.95, max(t.occlusion, s.flat_baseline + 0.25)),
                   blur=min(t.blur, s.sharp_baseline * 0.4))


def _learn_reference(s: CameraState, image: np.ndarray, health: im.Health, cfg: CameraConfig) -> None:
    fp = im.gradient_fingerprint(image)
    ref = _reference(s)
    rate = 1.0 / (s.reference_count + 1) if s.reference_count < cfg.reference_frames else cfg.reference_rate
    s.flat_baseline += rate * (health.scores["occlusion"] - s.flat_baseline)
    s.sharp_baseline += rate * (health.scores["blur"] - s.sharp_baseline)
    if ref is None:
        new = fp
    else:
        new = (1 - rate) * ref + rate * fp
        new = new - new.mean()
        new /= max(float(np.linalg.norm(new)), 1e-6)
    s.reference = new.astype(np.float16).tobytes()
    s.reference_count += 1


def _alert(camera_id: str, alert_type: str, state: AlertState, since: datetime, at: datetime, problems: list[str],
           health: im.Health) -> Alert:
    if state is AlertState.FIRING:
        summary = f"camera {camera_id}: {', '.join(problems)} for several frames; check the view"
    else:
        summary = f"camera {camera_id}: view healthy again"
    details: dict = {k: v for k, v in health.scores.items()}
    if problems:
        details["problems"] = ",".join(problems)
    return Alert(alert_id=f"{alert_type}:{camera_id}", type=alert_type, severity=alert_types.severity(alert_type), state=state,
                 device_id=camera_id, since=since, at=at, summary=summary, details=details)
