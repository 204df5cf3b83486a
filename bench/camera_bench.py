"""Camera analytics cost per frame, against decoding the same JPEG (the baseline, same run).

    python -m bench.camera_bench [--frames 60]

Reports milliseconds per frame for JPEG decode alone, for the intake (header checks + decode) and
for decode + the full health check, at 640x480, 1280x720 and 1920x1080 (real footage scaled), and
motion detection in frames per second on one core.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import cv2
import numpy as np

from processors.rules import image as im
from processors.rules.motion import MotionDetector
from scripts.camera_photos import videos

SIZES = ((640, 480), (1280, 720), (1920, 1080))


def per_frame_ms(fn: Callable[[bytes], object], items: list[bytes], repeat: int = 3) -> float:
    best = []
    for _ in range(repeat):
        t = time.perf_counter()
        for item in items:
            fn(item)
        best.append((time.perf_counter() - t) / len(items) * 1000)
    return min(best)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=40)
    args = parser.parse_args()
    cv2.setNumThreads(1)  # per core
    cap = cv2.VideoCapture(str(videos()["bigbuckbunny"]))
    source = []
    while len(source) < args.frames:
        ok, frame = cap.read()
        if not ok:
            break
        source.append(frame)
    ref = im.gradient_fingerprint(source[0])
    print("| resolution | JPEG size | decode (baseline) | intake (checks + decode) | decode + health check "
          "| ratio to decode | as the worker runs it (reduced decode + check) | ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for w, h in SIZES:
        jpegs = [cv2.imencode(".jpg", cv2.resize(f, (w, h)), [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
                 for f in source]
        base = per_frame_ms(lambda b: cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR), jpegs)
        intake = per_frame_ms(im.decode_image, jpegs)
        full = per_frame_ms(lambda b: im.check(im.decode_image(b), ref), jpegs)
        worker = per_frame_ms(lambda b: im.check(im.decode_image(b, min_side=im.WORK_WIDTH), ref), jpegs)
        size = statistics.mean(len(j) for j in jpegs) / 1024
        print(f"| {w}x{h} | {size:.0f} KiB | {base:.2f} ms | {intake:.2f} ms | {full:.2f} ms | {full / base:.2f}x "
              f"| {worker:.2f} ms | {worker / base:.2f}x |")
    print()
    print("| resolution | motion detection | decode (baseline) |")
    print("| --- | ---: | ---: |")
    for w, h in SIZES:
        frames = [cv2.resize(f, (w, h)) for f in source]
        jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes() for f in frames]
        det = MotionDetector()
        t = time.perf_counter()
        for _ in range(3):
            for f in frames:
                det.detect(f)
        fps = 3 * len(frames) / (time.perf_counter() - t)
        decode_fps = 1000 / per_frame_ms(lambda b: cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR), jpegs)
        print(f"| {w}x{h} | {fps:.0f} frames/s per core | {decode_fps:.0f} frames/s |")


if __name__ == "__main__":
    main()
