"""A simulated street camera: frames from a video file or a folder of images (through OpenCV),
published as JPEG at a low rate, with tampering on a schedule (cover, spray, blur, move, freeze,
dark, signal loss)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from devices import tamper as tp
from models.schemas import CameraFrame

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}

TAMPERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "cover": lambda f: tp.cover(f, 0.9),
    "spray": lambda f: tp.spray(f, 0.8),
    "blur": lambda f: tp.blur(f, 0.8),
    "move": lambda f: tp.move(f, 0.3, 20),
    "dark": lambda f: tp.gain(f, 0.08),
    "signal-loss": lambda f: tp.no_signal(f.shape, "blue"),
}


def frames_from(source: Path, loop: bool = True) -> Iterator[np.ndarray]:
    """Frames of a video file, or the images of a folder in name order; repeated when ``loop``."""
    while True:
        produced = False
        if source.is_dir():
            for path in sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
                frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if frame is not None:
                    produced = True
                    yield frame
        else:
            cap = cv2.VideoCapture(str(source))
            try:
                while True:
                    ok, frame = cap.read()
                    if not ok:
                        break
                    produced = True
                    yield frame
            finally:
                cap.release()
        if not (loop and produced):
            return


@dataclass
class TamperWindow:
    kind: str  # a key of TAMPERS, or "freeze"
    start: int  # first frame index
    end: int  # first frame index after it


@dataclass
class SimulatedCamera:
    camera_id: str
    source: Path
    fps: float = 1.0
    tampering: tuple[TamperWindow, ...] = ()
    quality: int = 80

    def frames(self, start: datetime, count: int | None = None) -> Iterator[CameraFrame]:
        frozen: np.ndarray | None = None
        for seq, frame in enumerate(frames_from(self.source)):
            if count is not None and seq >= count:
                return
            active = next((w for w in self.tampering if w.start <= seq < w.end), None)
            if active is not None and active.kind == "freeze":
                frozen = frame if frozen is None else frozen
                frame = frozen
            else:
                frozen = None
                if active is not None:
                    frame = TAMPERS[active.kind](frame)
            ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            assert ok
            yield CameraFrame(camera_id=self.camera_id, seq=seq, image=buf.tobytes(),
                              captured_at=start + timedelta(seconds=seq / self.fps))
