"""Metric points for each event kind. Personal data never becomes a metric: no names, ID
numbers or plate texts, only device ids, categories and numbers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from models.schemas import Alert, DeadLetter, DeviceStatus, GasReading, HotelRegistration, MotionEvent, PlateRead


@dataclass(frozen=True, slots=True)
class MetricPoint:
    measurement: str
    tags: dict[str, str]
    fields: dict[str, float | int | bool | str]
    time: datetime


#: Tags naming the device a point is about, in the order they are looked up in the registry.
DEVICE_TAGS = ("sensor_id", "checkpoint_id", "hotel_id", "device_id", "camera_id", "place")


def place_tags(place) -> dict[str, str]:
    """The district, site and grid cell of anything that has them (a registry entry, an alert's place),
    as tags: the empty ones left out."""
    return {k: v for k in ("district", "site", "grid") if (v := getattr(place, k, None))}


def with_place(points: list[MetricPoint], place_of: Callable[[str], dict[str, str] | None]) -> list[MetricPoint]:
    """Each point tagged with where its device is (district, site, grid cell from the registry), so
    every wall can be filtered by district; tags a point already has win."""
    out = []
    for p in points:
        if "district" not in p.tags:
            for tag in DEVICE_TAGS:
                device = p.tags.get(tag)
                place = place_of(device) if device else None
                if place:
                    p = MetricPoint(p.measurement, place | p.tags, p.fields, p.time)
                    break
        out.append(p)
    return out


def _latency(event_time: datetime | None, ingested_at: datetime | None) -> dict[str, float]:
    if event_time is None or ingested_at is None:
        return {}
    return {"ingest_latency_s": (ingested_at - event_time).total_seconds()}


def plate_read_points(read: PlateRead) -> list[MetricPoint]:
    fields: dict = {"count": 1, "confidence": read.confidence, "snapshot": read.snapshot_jpeg is not None}
    fields |= _latency(read.captured_at, read.ingested_at)
    return [MetricPoint("plate_reads", {"checkpoint_id": read.checkpoint_id, "camera_id": read.camera_id,
                                        "colour": read.plate_colour.value}, fields, read.captured_at)]


def registration_points(reg: HotelRegistration, late_after_s: float = 1800.0) -> list[MetricPoint]:
    fields: dict = {"count": 1}
    if reg.ingested_at is not None:
        fields["upload_delay_s"] = (reg.ingested_at - reg.checkin_at).total_seconds()
        fields["on_time"] = int(fields["upload_delay_s"] <= late_after_s)
    return [MetricPoint("registrations", {"hotel_id": reg.hotel_id, "id_type": reg.id_type.value},
                        fields, reg.ingested_at or reg.checkin_at)]


def gas_points(reading: GasReading) -> list[MetricPoint]:
    fields: dict = {"count": 1}
    if reading.value is not None and reading.value == reading.value:  # not NaN
        fields["value"] = float(reading.value)
    if reading.battery is not None:
        fields["battery"] = float(reading.battery)
    fields |= _latency(reading.measured_at, reading.ingested_at)
    return [MetricPoint("gas", {"sensor_id": reading.sensor_id, "gas": reading.gas.value,
                                "unit": reading.unit.value}, fields, reading.measured_at)]


def status_points(status: DeviceStatus, kind: str | None = None, lat: float | None = None,
                  lon: float | None = None) -> list[MetricPoint]:
    """A device's online state, with its registry coordinates (fields) so a map can place it."""
    at = status.at or status.ingested_at
    if at is None:
        return []
    tags = {"device_id": status.device_id} | ({"kind": kind} if kind else {})
    fields: dict = {"online": int(status.state.value == "online")}
    if lat is not None and lon is not None:
        fields |= {"lat": float(lat), "lon": float(lon)}
    return [MetricPoint("device_status", tags, fields, at)]


def alert_points(alert: Alert) -> list[MetricPoint]:
    return [MetricPoint("alerts", {"type": alert.type, "severity": alert.severity.value,
                                   "state": alert.state.value, "device_id": alert.device_id},
                        {"count": 1, "firing": int(alert.state.value == "firing")}, alert.at)]


def dead_letter_points(dl: DeadLetter) -> list[MetricPoint]:
    return [MetricPoint("dead_letters", {"stage": dl.stage, "reason": dl.reason_code},
                        {"count": 1, "payload_size": dl.payload_size}, dl.at)]


def camera_points(camera_id: str, district: str | None, scores: dict[str, float], problems: list[str],
                  at: datetime) -> list[MetricPoint]:
    tags = {"camera_id": camera_id} | ({"district": district} if district else {})
    fields: dict = {k: float(v) for k, v in scores.items()} | {"healthy": int(not problems),
                                                                "problems": len(problems)}
    return [MetricPoint("camera_health", tags, fields, at)]


def motion_points(event: MotionEvent) -> list[MetricPoint]:
    return [MetricPoint("camera_motion", {"camera_id": event.camera_id, "state": event.state},
                        {"count": 1, "area": event.area, "boxes": len(event.boxes)}, event.at)]


def data_quality_points(place_tag: str, place: str, issue: str, at: datetime) -> list[MetricPoint]:
    """An input that is valid on the wire but not as data (an ID number that fails its check, a plate
    read that fits no format): counted per hotel or checkpoint, never with the value itself."""
    return [MetricPoint("data_quality", {place_tag: place, "issue": issue}, {"count": 1}, at)]


def watchlist_points(kind: str, place: str, match: str, suppressed: bool, at: datetime) -> list[MetricPoint]:
    return [MetricPoint("watchlist_hits", {"list": kind, "place": place, "match": match},
                        {"count": 1, "suppressed": int(suppressed)}, at)]


def feedback_points(alert_type: str, rule: str, decision: str, at: datetime) -> list[MetricPoint]:
    return [MetricPoint("alert_feedback", {"type": alert_type, "rule": rule or "none", "decision": decision},
                        {"count": 1}, at)]
