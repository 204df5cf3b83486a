"""Factory helpers: valid messages with overridable fields, as dicts (wire form) or structs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

T0 = datetime(2026, 11, 29, 8, 0, 0, tzinfo=UTC)


def iso(t: datetime) -> str:
    return t.isoformat()


def plate_read(**over: Any) -> dict:
    base = {"read_id": "r-1", "checkpoint_id": "cp-001", "camera_id": "cp-001-L1", "lane": 1,
            "plate": "京A12345", "plate_colour": "blue", "confidence": 0.93, "captured_at": iso(T0)}
    return base | over


def registration(**over: Any) -> dict:
    base = {"registration_id": "g-1", "hotel_id": "hotel-001", "guest_name": "张伟", "id_type": "resident-id",
            "id_number": "11010519491231002X", "nationality": "CHN", "birth_date": "1949-12-31",
            "room": "305", "checkin_at": iso(T0)}
    return base | over


def gas_reading(**over: Any) -> dict:
    base = {"sensor_id": "gas-001", "gas": "combustible", "value": 3.5, "unit": "%LEL",
            "measured_at": iso(T0), "battery": 88.0, "seq": 1}
    return base | over


def status(**over: Any) -> dict:
    return {"device_id": "gas-001", "state": "online", "at": iso(T0)} | over


def payload(d: dict) -> bytes:
    return json.dumps(d, ensure_ascii=False).encode()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)
