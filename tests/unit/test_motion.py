"""Motion detection on synthetic sequences (a moving object, noise, a light change, a mask)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from processors.rules.motion import MotionDetector, MotionTracker

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def scene(x: int | None, light: float = 1.0, seed: int = 0, h: int = 360, w: int = 640) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frame = np.full((h, w, 3), 90.0)
    frame[200:, :] = 60
    if x is not None:
        frame[150:230, x:x + 60] = (210, 220, 230)
    return np.clip(frame * light + rng.normal(0, 2, frame.shape), 0, 255).astype(np.uint8)


def test_a_moving_object_is_boxed_where_it_is():
    det = MotionDetector()
    for i in range(5):
        det.detect(scene(None, seed=i))
    results = [det.detect(scene(100 + 20 * i, seed=10 + i)) for i in range(6)]
    boxes = results[-1].boxes
    assert boxes, results
    x, y, w, h = max(boxes, key=lambda b: b[2] * b[3])
    assert 150 <= x + w / 2 <= 260 and 150 <= y + h / 2 <= 240 and 0 < results[-1].area < 0.2


def test_noise_alone_is_not_motion_and_a_light_jump_recalibrates():
    det = MotionDetector()
    results = [det.detect(scene(None, seed=i)) for i in range(20)]
    assert not any(r.boxes for r in results)
    jump = det.detect(scene(None, light=1.8, seed=99))
    assert jump.recalibrated and not jump.boxes
    assert not any(det.detect(scene(None, light=1.8, seed=100 + i)).boxes for i in range(5))


def test_mask_hides_motion_where_it_is_ignored():
    mask = np.full((360, 640), 255, np.uint8)
    mask[:, :320] = 0  # ignore the left half (a road we do not watch)
    det = MotionDetector(mask=mask)
    for i in range(3):
        det.detect(scene(None, seed=i))
    assert not any(det.detect(scene(60 + 15 * i, seed=20 + i)).boxes for i in range(6))


def test_tracker_emits_start_and_end_once():
    tracker = MotionTracker()
    frames = [scene(None, seed=i) for i in range(5)] + [scene(80 + 25 * i, seed=50 + i) for i in range(10)] + \
             [scene(None, seed=80 + i) for i in range(12)]
    events = []
    for i, frame in enumerate(frames):
        _, evs = tracker.update(frame, T0 + timedelta(seconds=i))
        events += [(i, e.state) for e in evs]
    assert [s for _, s in events] == ["start", "end"]
    assert 5 <= events[0][0] <= 8 and 15 <= events[1][0] <= 22
