"""Camera analytics on the real pipeline: a camera covered then uncovered, and a corrupt frame."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devices.camera import SimulatedCamera, TamperWindow
from devices.client import DeviceClient
from models import schemas, topics
from models.schemas import CameraFrame
from models.topics import DeviceKind, MessageKind
from processors.rules import camera, image
from scripts.camera_photos import videos
from tests.integration.harness import MqttProbe, at, influx_query, kafka_records, poll

pytestmark = pytest.mark.integration


def test_covered_camera_raises_one_tampered_alert_and_its_resolution(pipeline, settings, registry):
    cam_id = registry.add("camera", district="xuhui")
    # covered twice: the second cover is the sentinel, sent after the first episode through the same path
    sim = SimulatedCamera(cam_id, videos()["bikes"], fps=1.0,
                          tampering=(TamperWindow("cover", 8, 14), TamperWindow("cover", 26, 32)))
    frames = list(sim.frames(datetime.now(UTC) - timedelta(minutes=2), count=30))
    state, expected = camera.CameraState(), []
    for frame in frames:  # what the pure rules make of this sequence
        state, alerts, _ = camera.observe(state, cam_id, image.decode_image(frame.image), frame.captured_at)
        expected += [(a.type, a.state.value, a.at) for a in alerts]
    assert [e[:2] for e in expected] == [("camera-tampered", "firing"), ("camera-tampered", "cleared"),
                                         ("camera-tampered", "firing")]
    second_at = expected[2][2]

    probe = MqttProbe(settings, f"{topics.PREFIX}/alerts/+/{cam_id}/#")
    client = DeviceClient(settings.mqtt, DeviceKind.CAMERA, cam_id).start()
    try:
        for frame in frames:
            client.publish(MessageKind.FRAME, frame).wait_for_publish(10)
        fired, cleared = probe.next_json(120), probe.next_json(60)
        assert (fired["type"], fired["state"], fired["severity"]) == ("camera-tampered", "firing", "high")
        assert "occlusion" in fired["details"]["problems"]
        assert (cleared["type"], cleared["state"], cleared["since"]) == ("camera-tampered", "cleared", fired["since"])
        repeated, second = probe.before(lambda a: at(a) >= second_at, 60)
        assert repeated == [] and second["state"] == "firing" and second["since"] != fired["since"]
    finally:
        client.close()
        probe.close()
    # wait for every frame's point before reading the values: the first rows to arrive may all be healthy
    query = f"SELECT healthy, occlusion FROM camera_health WHERE camera_id = '{cam_id}' AND district = 'xuhui'"
    rows = poll(lambda: (r := influx_query(settings, query)) and len(r) == 30 and r, 30, "one health point per frame")
    assert {r["healthy"] for r in rows} == {0, 1}


def test_corrupt_frame_goes_to_the_dead_letter_topic(pipeline, settings, registry):
    cam_id = registry.add("camera")
    client = DeviceClient(settings.mqtt, DeviceKind.CAMERA, cam_id).start()
    good = next(SimulatedCamera(cam_id, videos()["bikes"]).frames(datetime.now(UTC), count=1))
    truncated = CameraFrame(camera_id=cam_id, seq=1, captured_at=datetime.now(UTC), image=good.image[:2000])
    try:
        client.publish(MessageKind.FRAME, truncated).wait_for_publish(10)
    finally:
        client.close()
    source = topics.KAFKA_TOPICS[MessageKind.FRAME].encode()
    records = poll(lambda: [r for r in kafka_records(settings, topics.KAFKA_DEAD_LETTERS, lambda k, v: k == source,
                                                     timeout=5) if cam_id.encode() in r.value], 60, "dead letter")
    dl = schemas.decode_as(schemas.DeadLetter, records[0].value)
    assert (dl.stage, dl.reason_code) == ("processor", "image-truncated")
    assert dl.payload == truncated.image and dl.payload_size == 2000
