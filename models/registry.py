"""The device registry: every device the city runs, with where it is and how it should behave.

A YAML or CSV file, validated here. YAML::

    devices:
      - id: gas-001
        kind: gas
        site: bldg-17            # building or station: sensors at one site are correlated
        district: xuhui
        grid: "G-0412"
        lat: 31.19
        lon: 121.44
        interval_s: 60           # expected reporting interval
        thresholds: {level1_lel: 20, level2_lel: 40}

CSV: ``id,kind,site,district,grid,lat,lon,interval_s`` plus optional ``level1_lel,level2_lel``
columns (empty cells allowed). Unknown devices are rejected at ingest (dead letter
``unknown-device``).
"""

from __future__ import annotations

import csv
import io
from typing import Annotated

import msgspec

from models.topics import DeviceKind

THRESHOLD_KEYS = ("level1_lel", "level2_lel", "co_alarm_ppm_scale", "battery_low")


class DeviceEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    kind: DeviceKind
    site: str | None = None
    district: str | None = None
    grid: str | None = None
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)] | None = None
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)] | None = None
    interval_s: Annotated[float, msgspec.Meta(gt=0, le=86400)] | None = None
    thresholds: dict[str, float] = {}

    def __post_init__(self) -> None:
        unknown = set(self.thresholds) - set(THRESHOLD_KEYS)
        if unknown:
            raise ValueError(f"unknown threshold(s) {sorted(unknown)}; known: {list(THRESHOLD_KEYS)}")


class RegistryFile(msgspec.Struct, forbid_unknown_fields=True):
    devices: list[DeviceEntry]


class RegistryError(ValueError):
    pass


def parse_registry(text: str, fmt: str) -> dict[str, DeviceEntry]:
    """Parse YAML (``fmt='yaml'``) or CSV text into entries by id; raise RegistryError."""
    try:
        if fmt == "csv":
            entries = [_csv_entry(row, line) for line, row in enumerate(csv.DictReader(io.StringIO(text)), 2)]
        else:
            entries = msgspec.yaml.decode(text, type=RegistryFile).devices
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise RegistryError(str(exc)) from None
    by_id: dict[str, DeviceEntry] = {}
    for entry in entries:
        if entry.id in by_id:
            raise RegistryError(f"device {entry.id} is listed twice")
        by_id[entry.id] = entry
    return by_id


def _csv_entry(row: dict[str, str | None], line: int) -> DeviceEntry:
    data: dict = {k: v for k, v in row.items() if k and v not in (None, "") and k not in THRESHOLD_KEYS}
    data["thresholds"] = {k: float(v) for k, v in row.items() if k in THRESHOLD_KEYS and v not in (None, "")}
    try:
        return msgspec.convert(data, DeviceEntry, strict=False)
    except msgspec.ValidationError as exc:
        raise RegistryError(f"line {line}: {exc}") from None
