"""Image work in its own process: the same results as in-process, refusals as reason codes."""

import asyncio

import cv2

from processors import imaging
from processors.rules import camera
from tests import factories as f
from tests.unit.test_camera_image import synthetic_scene


def jpeg(image) -> bytes:
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def test_analyse_decodes_checks_and_tracks_motion():
    data = jpeg(synthetic_scene())
    result = imaging.analyse(camera.CameraState(), "cam-x", data, f.at(0), camera.CameraConfig(), motion=True)
    assert result.error is None and result.alerts == [] and result.problems == []
    assert result.state.reference_count == 1 and result.scores
    assert isinstance(result.motion, list)


def test_a_corrupt_image_is_refused_with_its_code():
    result = imaging.analyse(camera.CameraState(), "cam-x", b"\xff\xd8\xff garbage", f.at(0), camera.CameraConfig(),
                             motion=False)
    assert result.state is None and result.error[0].startswith("image-")


def test_the_worker_process_gives_the_same_result():
    data = jpeg(synthetic_scene())
    here = imaging.analyse(camera.CameraState(), "cam-y", data, f.at(0), camera.CameraConfig(), False)
    worker = imaging.ImageWorker()
    try:
        there = asyncio.run(worker.analyse(camera.CameraState(), "cam-y", data, f.at(0), camera.CameraConfig(),
                                           False))
    finally:
        worker.close()
    assert there.scores == here.scores and there.state == here.state
