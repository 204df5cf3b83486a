"""Image intake and single-frame health checks, on synthetic frames and real photographs."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from devices import tamper as tp
from processors.rules import image as im

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    from scripts.camera_photos import photos

    return photos()


def jpeg(frame: np.ndarray, quality: int = 80) -> bytes:
    return cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


def synthetic_scene(seed: int = 0, h: int = 480, w: int = 640) -> np.ndarray:
    """Shapes and texture: edges at every scale, like a street."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 110, np.uint8)
    for _ in range(40):
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        cv2.rectangle(img, (x, y), (x + int(rng.integers(10, 150)), y + int(rng.integers(10, 150))), colour, -1)
    noise = rng.normal(0, 6, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------ intake
def test_decodes_jpeg_and_png():
    frame = synthetic_scene()
    assert im.decode_image(jpeg(frame)).shape == frame.shape
    png = cv2.imencode(".png", frame)[1].tobytes()
    assert np.array_equal(im.decode_image(png), frame)


def png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return im.PNG_MAGIC + chunk


@pytest.mark.parametrize(("data", "code"), [
    (b"", "image-empty"),
    (b"GIF89a....", "image-format"),
    (png_header(100_000, 100_000) + b"\x00" * 64, "image-dimensions"),  # a pixel bomb, refused from the header
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image-truncated"),
])
def test_bad_images_have_reason_codes(data, code):
    with pytest.raises(im.ImageError) as err:
        im.decode_image(data)
    assert err.value.code == code


def test_truncated_and_corrupt_jpeg_and_oversize():
    data = jpeg(synthetic_scene())
    with pytest.raises(im.ImageError, match="end-of-image") as err:
        im.decode_image(data[: len(data) // 2])
    assert err.value.code == "image-truncated"
    corrupt = data[:200] + bytes(len(data) - 202) + b"\xff\xd9"
    with pytest.raises(im.ImageError) as err:
        im.decode_image(corrupt)
    assert err.value.code in ("image-corrupt",)
    with pytest.raises(im.ImageError) as err:
        im.decode_image(data, max_bytes=1000)
    assert err.value.code == "image-too-large"


def test_header_dimensions_match_decoding(photos):
    for frame in list(photos.values())[:5]:
        fmt, w, h = im.image_header(jpeg(frame))
        assert (fmt, h, w) == ("jpeg", *frame.shape[:2])


# ------------------------------------------------------------------ checks on synthetic frames
@pytest.mark.parametrize(("tamper", "problem"), [
    (lambda f: tp.blur(f, 0.8), "blur"),
    (lambda f: tp.gain(f, 0.1), "dark"),
    (lambda f: tp.gain(f, 4.0, 40), "overexposed"),
    (lambda f: tp.fog(f, 0.08), "low-contrast"),
    (lambda f: tp.cover(f, 0.8), "occlusion"),
    (lambda f: tp.no_signal(f.shape, "blue"), "signal-loss"),
    (lambda f: tp.no_signal(f.shape, "bars"), "signal-loss"),
])
def test_each_tamper_is_detected_on_a_synthetic_scene(tamper, problem):
    frame = synthetic_scene(1)
    assert im.check(frame).healthy
    assert problem in im.check(im.decode_image(jpeg(tamper(frame)))).problems


def test_scores_do_not_depend_on_resolution():
    frame = synthetic_scene(2, 1080, 1920)
    small = cv2.resize(frame, (640, 360), interpolation=cv2.INTER_AREA)
    a, b = im.check(frame).scores, im.check(small).scores
    assert abs(a["blur"] - b["blur"]) / b["blur"] < 0.35 and abs(a["brightness"] - b["brightness"]) < 2


# ------------------------------------------------------------------ checks on real photographs
def test_real_photographs_are_healthy(photos):
    flagged = {name: im.check(im.decode_image(jpeg(p))).problems for name, p in photos.items()}
    assert sum(bool(v) for v in flagged.values()) <= 1, flagged  # the bland clock face may look occluded


@pytest.mark.parametrize(("tamper", "problem"), [
    (lambda f: tp.blur(f, 0.6), "blur"), (lambda f: tp.gain(f, 0.1), "dark"),
    (lambda f: tp.fog(f, 0.08), "low-contrast"), (lambda f: tp.cover(f, 0.8), "occlusion"),
    (lambda f: tp.gain(f, 8.0, 40), "overexposed"), (lambda f: tp.no_signal(f.shape, "grey"), "signal-loss"),
])
def test_tampered_real_photographs_are_detected(photos, tamper, problem):
    hits = [problem in im.check(im.decode_image(jpeg(tamper(p)))).problems for p in photos.values()]
    assert sum(hits) >= 0.85 * len(hits)


def test_scene_change_is_found_and_light_change_is_not(photos):
    for photo in photos.values():
        ref = im.gradient_fingerprint(photo)
        for lit in (tp.gamma(photo, 0.6), tp.gamma(photo, 1.6), tp.gain(photo, 0.5), tp.night(photo, 0.45, 3.0)):
            assert "scene-changed" not in im.check(im.decode_image(jpeg(lit)), ref).problems
        assert "scene-changed" in im.check(im.decode_image(jpeg(tp.move(photo, 0.2, 10))), ref).problems


# ------------------------------------------------------------------ command line contract
def run_check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "safecity.cli", "camera", "check", *args], capture_output=True,
                          text=True, cwd=ROOT)


def test_cli_contract(tmp_path, photos):
    good, covered, moved = tmp_path / "good.jpg", tmp_path / "covered.png", tmp_path / "moved.jpg"
    cv2.imwrite(str(good), photos["coffee"])
    cv2.imwrite(str(covered), tp.cover(photos["coffee"], 0.9))
    cv2.imwrite(str(moved), tp.move(photos["coffee"], 0.3, 20))
    ok = json.loads(run_check(str(good)).stdout)
    assert ok["healthy"] is True and ok["problems"] == [] and set(ok["scores"]) >= {"blur", "occlusion"}
    bad = json.loads(run_check(str(covered)).stdout)
    assert bad["healthy"] is False and "occlusion" in bad["problems"]
    assert set(bad["problems"]) <= set(im.PROBLEMS)
    assert "scene-changed" in json.loads(run_check(str(moved), "--reference", str(good)).stdout)["problems"]
    assert "scene-changed" not in json.loads(run_check(str(good)).stdout)["problems"]


def test_cli_refuses_unreadable_files(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    for path in (text, tmp_path / "missing.jpg"):
        out = run_check(str(path))
        assert out.returncode == 2 and out.stdout == "" and str(path) in out.stderr
