"""What happens to cameras in the field, as pure image transforms: covered, sprayed, blurred,
moved, darkened, blinded, fogged, signal lost. Used by the simulated camera and the evaluation."""

from __future__ import annotations

import cv2
import numpy as np


def blur(image: np.ndarray, strength: float) -> np.ndarray:
    """Out of focus: Gaussian blur with sigma = strength x 1% of the width."""
    sigma = max(0.5, strength * image.shape[1] / 100)
    return cv2.GaussianBlur(image, (0, 0), sigma)


def cover(image: np.ndarray, fraction: float, colour: tuple[int, int, int] = (20, 18, 16)) -> np.ndarray:
    """A hand, a bag or tape over the lens: a near-uniform patch over ``fraction`` of the view,
    slightly out of focus at its edge (it is right in front of the lens)."""
    out = image.copy()
    h, w = out.shape[:2]
    ch = int(h * min(1.0, fraction ** 0.5 * 1.05))
    cw = int(w * min(1.0, fraction / max(ch / h, 1e-6)))
    mask = np.zeros((h, w), np.float32)
    mask[h - ch:, :cw] = 1.0
    mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, w / 200))
    patch = np.empty_like(out)
    patch[:] = colour
    noise = np.random.default_rng(0).normal(0, 1.5, out.shape)
    patch = np.clip(patch + noise, 0, 255).astype(np.uint8)
    m = mask[..., None] if out.ndim == 3 else mask
    return (out * (1 - m) + patch * m).astype(np.uint8)


def spray(image: np.ndarray, fraction: float, colour: tuple[int, int, int] = (40, 160, 60)) -> np.ndarray:
    """Spray paint on the lens: a heavily blurred colour blob over ``fraction`` of the view."""
    h, w = image.shape[:2]
    mask = np.zeros((h, w), np.float32)
    r = int((fraction * h * w / np.pi) ** 0.5)
    cv2.circle(mask, (w // 2, h // 2), r, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), max(2.0, r / 6))
    patch = np.empty_like(image)
    patch[:] = colour
    m = mask[..., None] if image.ndim == 3 else mask
    return (image * (1 - m) + patch * m).astype(np.uint8)


def gain(image: np.ndarray, factor: float, offset: float = 0.0) -> np.ndarray:
    return np.clip(image.astype(np.float32) * factor + offset, 0, 255).astype(np.uint8)


def gamma(image: np.ndarray, g: float) -> np.ndarray:
    lut = np.clip(((np.arange(256) / 255.0) ** g) * 255, 0, 255).astype(np.uint8)
    return cv2.LUT(image, lut)


def night(image: np.ndarray, level: float = 0.35, noise: float = 4.0) -> np.ndarray:
    """Dusk or night: less light and more sensor noise."""
    dim = image.astype(np.float32) * level
    noisy = dim + np.random.default_rng(1).normal(0, noise, image.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def fog(image: np.ndarray, keep: float) -> np.ndarray:
    """Low contrast: the image squeezed towards its mean (fog, a dirty or misted lens)."""
    f = image.astype(np.float32)
    return np.clip(f.mean() + (f - f.mean()) * keep, 0, 255).astype(np.uint8)


def move(image: np.ndarray, shift: float, angle: float = 0.0) -> np.ndarray:
    """The camera knocked: the view shifted by ``shift`` x width and turned by ``angle`` degrees."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    m[0, 2] += shift * w
    m[1, 2] += shift * h * 0.3
    return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT)


def no_signal(shape: tuple[int, ...], kind: str = "blue") -> np.ndarray:
    """What an encoder sends when the camera is gone: a uniform frame or colour bars."""
    h, w = shape[:2]
    if kind == "bars":
        colours = [(192, 192, 192), (0, 192, 192), (192, 192, 0), (0, 192, 0), (192, 0, 192), (0, 0, 192),
                   (192, 0, 0)]
        out = np.zeros((h, w, 3), np.uint8)
        for i, c in enumerate(colours):
            out[:, i * w // 7:(i + 1) * w // 7] = c
        return out
    colour = {"blue": (160, 0, 0), "black": (0, 0, 0), "grey": (128, 128, 128)}[kind]
    out = np.empty((h, w, 3), np.uint8)
    out[:] = colour
    return out
