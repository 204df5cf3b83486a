"""Per-camera health over frame sequences: hysteresis, frozen images, the learned reference."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import numpy as np

from devices import tamper as tp
from processors.rules import camera
from tests import factories as f
from tests.unit.test_camera_image import synthetic_scene

CFG = camera.CameraConfig(bad_frames=3, good_frames=2, frozen_s=30, reference_frames=3)


def feed(frames, state=None, start: float = 0.0, every: float = 5.0):
    state = state or camera.CameraState()
    out = []
    for i, frame in enumerate(frames):
        state, alerts, _ = camera.observe(state, "cam-1", frame, f.at(start + i * every), CFG)
        out += [(i, a.type, a.state.value) for a in alerts]
    return state, out


def live(n: int, seed: int = 3) -> list[np.ndarray]:
    """A healthy camera: the same scene with fresh sensor noise each frame."""
    base = synthetic_scene(seed)
    rng = np.random.default_rng(seed)
    return [np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8) for _ in range(n)]


def test_one_bad_frame_does_not_alert_n_do_and_recovery_clears():
    frames = live(12)
    frames[3] = tp.cover(frames[3], 0.9)  # a bird, once
    for i in range(6, 9):
        frames[i] = tp.cover(frames[i], 0.9)
    _, out = feed(frames)
    assert out == [(8, "camera-tampered", "firing"), (10, "camera-tampered", "cleared")]


def test_a_covered_lens_is_tampering_not_also_an_image_quality_alert():
    frames = live(4) + [tp.cover(x, 1.0) for x in live(5, seed=4)]
    _, out = feed(frames)
    assert [t for _, t, _ in out] == ["camera-tampered"]


def test_a_live_still_scene_is_not_frozen():
    assert feed(live(15))[1] == []


def test_frozen_image_is_found_after_the_frozen_time():
    frozen = live(4)[3]  # the same scene, then the picture stops changing
    _, out = feed(live(3) + [frozen] * 12)
    # identical from frame 3 on; 30 s later (frame 9) it counts as frozen; 3 such frames -> alert
    assert out == [(11, "camera-frozen", "firing")]


def test_scene_change_needs_a_learned_reference_and_survives_serialisation():
    healthy = live(5)
    state, out = feed(healthy)
    assert out == [] and state.reference_count == 5
    state = msgspec.json.decode(msgspec.json.encode(state), type=camera.CameraState)
    moved = [tp.move(x, 0.25, 15) for x in live(4, seed=3)]
    _, out = feed(moved, state, start=100)
    assert out == [(2, "camera-tampered", "firing")]
    dusk = [tp.night(x, 0.5, 2.0) for x in live(4, seed=3)]
    assert feed(dusk, state, start=100)[1] == []


def test_alert_details_carry_scores_not_images():
    frames = live(3) + [tp.cover(x, 0.9) for x in live(3)]
    state = camera.CameraState()
    for i, frame in enumerate(frames):
        state, alerts, health = camera.observe(state, "cam-1", frame, f.at(i) + timedelta(0), CFG)
    assert alerts and "occlusion" in alerts[0].details["problems"].split(",") and "occlusion" in alerts[0].details
    assert len(msgspec.json.encode(alerts[0])) < 2000
