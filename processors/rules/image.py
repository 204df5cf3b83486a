"""Snapshot intake and single-image health checks: pure functions over bytes and numpy arrays.

``decode_image`` refuses what could hurt a worker before decoding it: oversized files, pixel
bombs (dimensions read from the header), truncated or corrupt data, each with a reason code.
``check`` scores one frame: blur, dark, over-exposed, low contrast, occlusion, signal loss and,
given a reference, scene changed. Every check works on a fixed working resolution, so scores do
not depend on the camera's resolution.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import cv2
import numpy as np

MAX_IMAGE_BYTES = 8 * 1024 * 1024
MAX_PIXELS = 4096 * 4096
WORK_WIDTH = 640  # the longer side of the working image
REF_SIZE = (128, 96)  # gradient fingerprint used to compare scenes

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class ImageError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def image_header(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) from the header alone, without decoding pixels."""
    if data.startswith(PNG_MAGIC):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ImageError("image-corrupt", "PNG without an IHDR header")
        width, height = struct.unpack(">II", data[16:24])
        return "png", width, height
    if data.startswith(JPEG_MAGIC):
        i = 2
        while i + 4 <= len(data):
            if data[i] != 0xFF:
                raise ImageError("image-corrupt", f"JPEG marker expected at byte {i}")
            marker = data[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
                continue
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            (length,) = struct.unpack(">H", data[i + 2:i + 4])
            if marker in SOF_MARKERS:
                if i + 9 > len(data):
                    break
                height, width = struct.unpack(">HH", data[i + 5:i + 9])
                return "jpeg", width, height
            if marker == 0xDA:  # start of scan before any frame header
                break
            i += 2 + length
        raise ImageError("image-truncated" if i + 4 > len(data) else "image-corrupt", "JPEG without a frame header")
    raise ImageError("image-format", "not a JPEG or PNG image")


REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def decode_image(data: bytes, max_bytes: int = MAX_IMAGE_BYTES, max_pixels: int = MAX_PIXELS,
                 min_side: int | None = None) -> np.ndarray:
    """Decode a JPEG or PNG to a BGR uint8 array, or raise ImageError with a reason code.

    ``min_side``: decode a JPEG at 1/2, 1/4 or 1/8 scale (in the DCT, so much faster) while its
    longer side stays at least this long; analytics work at ~640 pixels anyway."""
    if not data:
        raise ImageError("image-empty", "no image data")
    if len(data) > max_bytes:
        raise ImageError("image-too-large", f"{len(data)} bytes exceeds {max_bytes}")
    fmt, width, height = image_header(data)
    if width == 0 or height == 0 or width * height > max_pixels:
        raise ImageError("image-dimensions", f"{width}x{height} is outside 1..{max_pixels} pixels")
    tail = data.rstrip(b"\x00\r\n ")
    if fmt == "jpeg" and not tail.endswith(b"\xff\xd9"):
        raise ImageError("image-truncated", "JPEG ends before its end-of-image marker")
    if fmt == "png" and b"IEND" not in tail[-12:]:
        raise ImageError("image-truncated", "PNG ends before its IEND chunk")
    factor = 1
    if min_side and fmt == "jpeg":
        while factor < 8 and max(width, height) // (factor * 2) >= min_side:
            factor *= 2
    image = cv2.imdecode(np.frombuffer(data, np.uint8), REDUCED.get(factor, cv2.IMREAD_COLOR))
    expected = (-(-height // factor), -(-width // factor))
    if image is None or image.shape[:2] != expected:
        raise ImageError("image-corrupt", f"{fmt.upper()} data could not be decoded")
    return image


# --------------------------------------------------------------------------- health checks
@dataclass(frozen=True)
class Thresholds:
    blur: float = 0.016  # sharpness ratio below this: blurred
    blur_energy: float = 10.0  # or Laplacian variance below this (nothing fine left at all)
    dark_mean: float = 40.0  # mean luminance below, and
    dark_p95: float = 90.0  # 95th percentile below: too dark
    overexposed_fraction: float = 0.2  # share of clipped (>= 250) pixels above: over-exposed
    low_contrast_spread: float = 40.0  # 2nd..98th percentile spread below: low contrast
    occlusion: float = 0.5  # share of the view that is featureless above: occluded
    signal_loss: float = 0.9
    scene_similarity: float = 0.45  # gradient similarity to the reference below: scene changed


DEFAULTS = Thresholds()
PROBLEMS = ("blur", "dark", "overexposed", "low-contrast", "occlusion", "signal-loss", "scene-changed")


@dataclass
class Health:
    scores: dict[str, float]
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems


def working_gray(image: np.ndarray) -> np.ndarray:
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    h, w = gray.shape
    scale = WORK_WIDTH / max(h, w)
    if scale < 1:
        gray = cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return gray


def _power(img: np.ndarray) -> float:
    """Mean of squares, via cv2.meanStdDev (no float temporaries)."""
    mean, std = cv2.meanStdDev(img)
    return float(mean[0, 0] ** 2 + std[0, 0] ** 2)


def sharpness(gray: np.ndarray) -> tuple[float, float]:
    """(ratio, energy): Laplacian variance over mean gradient energy, and the Laplacian variance.
    The ratio measures how much of the edge energy is fine-scale, whatever the scene's contrast or
    texture: ~0.02-0.25 for focused photographs, below 0.016 once blur removes the fine scale."""
    _, lap_std = cv2.meanStdDev(cv2.Laplacian(gray, cv2.CV_16S))
    lap = float(lap_std[0, 0] ** 2)
    tenengrad = _power(cv2.Sobel(gray, cv2.CV_16S, 1, 0)) + _power(cv2.Sobel(gray, cv2.CV_16S, 0, 1))
    return lap / (tenengrad + 1e-3), lap


def flat_fraction(gray: np.ndarray, grid: int = 16, flat_std: float = 4.0) -> float:
    """Share of the view made of featureless cells (covered, sprayed, or nothing to see)."""
    h, w = gray.shape
    ch, cw = h // grid, w // grid
    g = gray[: ch * grid, : cw * grid].astype(np.float32)
    mean = cv2.resize(g, (grid, grid), interpolation=cv2.INTER_AREA)
    mean_sq = cv2.resize(g * g, (grid, grid), interpolation=cv2.INTER_AREA)
    var = np.maximum(mean_sq - mean * mean, 0)
    return float((var < flat_std * flat_std).mean())


def histogram_stats(gray: np.ndarray) -> tuple[float, float, float, float, float]:
    """(mean, share >= 250, 2nd, 95th, 98th percentile) from one 256-bin histogram."""
    hist = cv2.calcHist([gray], [0], None, [256], [0, 256]).ravel()
    total = float(hist.sum())
    cdf = np.cumsum(hist) / total
    levels = np.arange(256, dtype=np.float64)
    p2, p95, p98 = (float(np.searchsorted(cdf, q)) for q in (0.02, 0.95, 0.98))
    return float((hist * levels).sum() / total), float(hist[250:].sum() / total), p2, p95, p98


def signal_loss_score(image: np.ndarray) -> float:
    """1 for a uniform frame or colour bars (every column uniform), 0 for a real scene."""
    small = cv2.resize(image, (64, 48), interpolation=cv2.INTER_AREA).astype(np.float32)
    if small.ndim == 2:
        small = small[..., None]
    uniform = float(small.std(axis=(0, 1)).max())
    column = float(np.median(small.std(axis=0)))  # how much each column varies top to bottom
    return max(1.0 - uniform / 12.0, 1.0 - column / 6.0, 0.0)


def gradient_fingerprint(image: np.ndarray) -> np.ndarray:
    """Gradient magnitude at low resolution, zero-mean and unit-norm: insensitive to gain and
    offset (day/night), sensitive to where the scene's edges are."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(gray, REF_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)
    small = cv2.GaussianBlur(small, (3, 3), 0)
    mag = cv2.magnitude(cv2.Sobel(small, cv2.CV_32F, 1, 0), cv2.Sobel(small, cv2.CV_32F, 0, 1))
    mag = np.sqrt(mag)  # compresses strong edges: lighting changes edge strength, not position
    mag -= mag.mean()
    norm = float(np.linalg.norm(mag))
    return mag / norm if norm > 1e-6 else mag


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum())


def check(image: np.ndarray, reference: np.ndarray | None = None, t: Thresholds = DEFAULTS) -> Health:
    """Score one frame. ``reference`` is a gradient fingerprint of the camera's healthy view."""
    gray = working_gray(image)
    mean, clipped, p2, p95, p98 = histogram_stats(gray)
    sharp, energy = sharpness(gray)
    scores = {
        "blur": round(sharp, 5),
        "brightness": round(mean, 2),
        "clipped": round(clipped, 4),
        "contrast": round(float(p98 - p2), 2),
        "occlusion": round(flat_fraction(gray), 4),
        "signal_loss": round(signal_loss_score(image), 4),
    }
    # Each check stands on its own (a covered lens is both occluded and dark), except focus: a
    # featureless or flat view has no edges to judge it by.
    problems = []
    flat = scores["contrast"] < t.low_contrast_spread or scores["signal_loss"] >= t.signal_loss
    if not flat and (sharp < t.blur or (energy < t.blur_energy and scores["occlusion"] <= t.occlusion)):
        problems.append("blur")
    if scores["brightness"] < t.dark_mean and p95 < t.dark_p95:
        problems.append("dark")
    if scores["clipped"] > t.overexposed_fraction:
        problems.append("overexposed")
    if scores["contrast"] < t.low_contrast_spread:
        problems.append("low-contrast")
    if scores["occlusion"] > t.occlusion:
        problems.append("occlusion")
    if scores["signal_loss"] >= t.signal_loss:
        problems.append("signal-loss")
    if reference is not None:
        scores["scene_similarity"] = round(similarity(gradient_fingerprint(image), reference), 4)
        if scores["scene_similarity"] < t.scene_similarity and "signal-loss" not in problems:
            problems.append("scene-changed")
    return Health(scores, problems)
