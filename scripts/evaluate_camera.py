"""Evaluate the camera health checks on real photographs at their default settings.

Each photograph is tampered with in every way at several strengths; a check's detection rate is
the share of tampered frames where it reports its problem, its false-alarm rate the share of
untampered frames (originals, JPEG-recompressed, and light changes for scene-changed) where it
does. Prints a Markdown table (as in the README).

    python -m scripts.evaluate_camera
"""

from __future__ import annotations

import collections
from collections.abc import Callable

import cv2
import numpy as np

from devices import tamper as tp
from processors.rules import image as im
from scripts.camera_photos import photos, videos


def jpeg(image: np.ndarray, quality: int = 60) -> np.ndarray:
    return cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_COLOR)


# problem -> (tamper name, strengths, transform)
TAMPERS: dict[str, list[tuple[str, Callable[[np.ndarray], np.ndarray]]]] = {
    "blur": [(f"blur {s}% width", lambda i, s=s: tp.blur(i, s)) for s in (0.3, 0.6, 1.2)],
    "dark": [(f"gain x{g}", lambda i, g=g: tp.gain(i, g)) for g in (0.2, 0.1, 0.05)],
    "overexposed": [(f"gain x{g}", lambda i, g=g: tp.gain(i, g, 40)) for g in (2.5, 4.0, 8.0)],
    "low-contrast": [(f"fog keep {k}", lambda i, k=k: tp.fog(i, k)) for k in (0.15, 0.08, 0.04)],
    "occlusion": [(f"cover {int(f * 100)}%", lambda i, f=f: tp.cover(i, f)) for f in (0.6, 0.8, 1.0)]
    + [(f"spray {int(f * 100)}%", lambda i, f=f: tp.spray(i, f)) for f in (0.6, 0.8)],
    "signal-loss": [(k, lambda i, k=k: tp.no_signal(i.shape, k)) for k in ("blue", "black", "grey", "bars")],
    "scene-changed": [(f"moved {int(s * 100)}% {a} deg", lambda i, s=s, a=a: tp.move(i, s, a))
                      for s, a in ((0.1, 5), (0.2, 10), (0.35, 25))],
}
LIGHT_CHANGES: list[tuple[str, Callable[[np.ndarray], np.ndarray]]] = [
    ("gamma 0.6", lambda i: tp.gamma(i, 0.6)), ("gamma 1.6", lambda i: tp.gamma(i, 1.6)),
    ("gain x0.5", lambda i: tp.gain(i, 0.5)), ("gain x1.3", lambda i: tp.gain(i, 1.3)),
    ("dusk", lambda i: tp.night(i, 0.45, 3.0)),
]


def evaluate() -> dict[str, dict[str, float]]:
    pics = photos()
    results: dict[str, dict[str, float]] = {}
    clean = [jpeg(p, 90) for p in pics.values()] + [jpeg(p, 40) for p in pics.values()]
    for problem, tampers in TAMPERS.items():
        hits = total = 0
        per_strength = collections.Counter()
        for name, fn in tampers:
            for photo in pics.values():
                ref = im.gradient_fingerprint(photo) if problem == "scene-changed" else None
                found = problem in im.check(jpeg(fn(photo)), ref).problems
                hits += found
                total += 1
                per_strength[name] += found
        if problem == "scene-changed":
            # other photographs are other scenes too
            names = list(pics)
            for a, b in zip(names, names[1:] + names[:1], strict=True):
                hits += "scene-changed" in im.check(jpeg(pics[b]), im.gradient_fingerprint(pics[a])).problems
                total += 1
            fa_frames = [(jpeg(fn(p)), im.gradient_fingerprint(p)) for p in pics.values() for _, fn in LIGHT_CHANGES]
            fa_frames += [(c, im.gradient_fingerprint(p)) for c, p in zip(clean, list(pics.values()) * 2, strict=True)]
        else:
            fa_frames = [(c, None) for c in clean]
        false_alarms = sum(problem in im.check(frame, ref).problems for frame, ref in fa_frames)
        results[problem] = {"detected": hits / total, "tampered": total, "false_alarms": false_alarms / len(fa_frames),
                            "healthy": len(fa_frames),
                            **{f"@{k}": v / len(pics) for k, v in per_strength.items()}}
    return results


def table(results: dict[str, dict[str, float]]) -> str:
    lines = ["| check | tampered frames | detected | healthy frames | false alarms | by strength |",
             "| --- | ---: | ---: | ---: | ---: | --- |"]
    for problem, r in results.items():
        strengths = ", ".join(f"{k[1:]}: {v:.0%}" for k, v in r.items() if k.startswith("@"))
        lines.append(f"| {problem} | {r['tampered']} | {r['detected']:.0%} | {r['healthy']} | "
                     f"{r['false_alarms']:.1%} | {strengths} |")
    return "\n".join(lines)


def read_frames(path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            return frames
        frames.append(frame)


def evaluate_motion(still: int = 60) -> list[dict]:
    """Each clip spliced between still shots of its first and last frame (sensor noise added, and a
    sudden light change in the second): motion is visibly present exactly in the clip's frames."""
    from datetime import UTC, datetime, timedelta

    from processors.rules.motion import MotionTracker

    rng = np.random.default_rng(0)
    rows = []
    for name, path in videos().items():
        clip = read_frames(path)

        def noisy(frame: np.ndarray, light: float = 1.0) -> np.ndarray:
            return np.clip(frame * light + rng.normal(0, 2.0, frame.shape), 0, 255).astype(np.uint8)

        before = [noisy(clip[0]) for _ in range(still)]
        after = [noisy(clip[-1], 1.0 if i < still // 2 else 1.6) for i in range(still)]
        frames = before + clip + after
        truth = [False] * still + [True] * len(clip) + [False] * still
        tracker, t0 = MotionTracker(), datetime(2026, 1, 1, tzinfo=UTC)
        detected, events = [], []
        for i, frame in enumerate(frames):
            result, evs = tracker.update(frame, t0 + timedelta(seconds=i / 25))
            detected.append(bool(result.boxes))
            events += [(i, e.state) for e in evs]
        moving = sum(d and t for d, t in zip(detected, truth, strict=True))
        false = sum(d and not t for d, t in zip(detected, truth, strict=True))
        starts = [i for i, s in events if s == "start"]
        ends = [i for i, s in events if s == "end"]
        rows.append({"clip": name, "frames": len(clip), "motion frames found": moving / len(clip),
                     "false motion frames": false / (2 * still), "events": len(starts),
                     "start delay (frames)": (starts[0] - still) if starts else None,
                     "end delay (frames)": (ends[-1] - still - len(clip)) if ends else None})
    return rows


def motion_table(rows: list[dict]) -> str:
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    for r in rows:
        lines.append("| " + " | ".join(f"{v:.0%}" if isinstance(v, float) else str(v) for v in r.values()) + " |")
    return "\n".join(lines)


def main() -> None:
    print(table(evaluate()))
    print()
    print(motion_table(evaluate_motion()))


if __name__ == "__main__":
    main()
