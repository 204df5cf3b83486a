"""Device simulators: each ``next(now)`` returns the device's next event (pure, seeded)."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import cv2
import numpy as np

from devices import generators
from models.schemas import GasReading, GasType, GasUnit, HotelRegistration, IdType, PlateRead
from models.topics import DeviceKind, MessageKind


def snapshot_jpeg(rng: random.Random, plate_text: str, width: int = 320, height: int = 240) -> bytes:
    """A synthetic checkpoint snapshot: road, car body, plate box (serial in Latin characters)."""
    nrng = np.random.default_rng(rng.randrange(2**32))
    img = np.full((height, width, 3), 90, np.uint8)
    img[:] = nrng.integers(70, 110, (1, 1, 3), dtype=np.uint8)
    img = cv2.add(img, nrng.integers(0, 25, img.shape, dtype=np.uint8))
    car = tuple(int(c) for c in nrng.integers(30, 220, 3))
    cv2.rectangle(img, (width // 6, height // 4), (5 * width // 6, 7 * height // 8), car, -1)
    px, py = width // 2 - 60, 3 * height // 4 - 15
    cv2.rectangle(img, (px, py), (px + 120, py + 30), (160, 60, 20), -1)
    cv2.putText(img, plate_text[1:], (px + 8, py + 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return buf.tobytes()


@dataclass
class Simulator:
    device_id: str
    rng: random.Random
    kind: DeviceKind = DeviceKind.GAS
    message: MessageKind = MessageKind.GAS_READING
    period_s: float = 1.0


@dataclass
class CheckpointSim(Simulator):
    kind: DeviceKind = DeviceKind.CAMERA
    message: MessageKind = MessageKind.PLATE_READ
    lanes: int = 4
    snapshots: bool = True
    period_s: float = 0.5
    wanted: tuple[str, ...] = ()  # plates that pass now and then (the demo's watch list)
    wanted_rate: float = 0.0

    def next(self, now: datetime) -> PlateRead:
        text, colour = generators.plate(self.rng)
        if self.wanted and self.rng.random() < self.wanted_rate:
            text = generators.ocr_noise(self.rng.choice(self.wanted), self.rng, 0.3)
        lane = self.rng.randint(1, self.lanes)
        return PlateRead(read_id=uuid.UUID(int=self.rng.getrandbits(128)).hex, checkpoint_id=self.device_id,
                         camera_id=f"{self.device_id}-L{lane}", lane=lane, plate=text, plate_colour=colour,
                         confidence=round(self.rng.uniform(0.72, 0.995), 3), captured_at=now,
                         snapshot_jpeg=snapshot_jpeg(self.rng, text) if self.snapshots else None)


@dataclass
class HotelSim(Simulator):
    kind: DeviceKind = DeviceKind.HOTEL
    message: MessageKind = MessageKind.REGISTRATION
    rooms: int = 200
    period_s: float = 5.0
    wanted_ids: tuple[str, ...] = ()  # guests on the demo's watch list, now and then
    wanted_rate: float = 0.0

    def next(self, now: datetime) -> HotelRegistration:
        rng = self.rng
        if self.wanted_ids and rng.random() < self.wanted_rate:
            number = rng.choice(self.wanted_ids)
            return HotelRegistration(registration_id=uuid.UUID(int=rng.getrandbits(128)).hex, hotel_id=self.device_id,
                                     guest_name=generators.chinese_name(rng), id_type=IdType.RESIDENT_ID,
                                     id_number=number, nationality="CHN",
                                     birth_date=datetime.strptime(number[6:14], "%Y%m%d").date(),
                                     room=str(rng.randint(101, 100 + self.rooms)), checkin_at=now)
        if rng.random() < 0.9:
            nationality, name, id_type = "CHN", generators.chinese_name(rng), IdType.RESIDENT_ID
            number = generators.resident_id(rng)
            birth = datetime.strptime(number[6:14], "%Y%m%d").date()
        else:
            nationality, name, number = generators.foreign_guest(rng)
            id_type = IdType.PASSPORT
            birth = datetime(rng.randint(1950, 2004), rng.randint(1, 12), rng.randint(1, 28)).date()
        return HotelRegistration(registration_id=uuid.UUID(int=rng.getrandbits(128)).hex, hotel_id=self.device_id,
                                 guest_name=name, id_type=id_type, id_number=number, nationality=nationality,
                                 birth_date=birth, room=str(rng.randint(101, 100 + self.rooms)), checkin_at=now)


@dataclass
class GasSensorSim(Simulator):
    """Combustible gas (%LEL) or CO (ppm): a drifting baseline, and now and then a leak that ramps
    up past the alarm levels and then ventilates away."""

    gas: GasType = GasType.COMBUSTIBLE
    leak_probability: float = 0.002
    battery: float = 100.0
    seq: int = 0
    _baseline: float = 1.0
    _leak: float = 0.0
    _leak_rate: float = 0.0
    _rising: bool = field(default=False)
    _peak: float = 0.0

    def start_leak(self, rate: float = 4.0, peak: float | None = None) -> None:
        """Gas rises by ``rate`` %LEL per reading up to ``peak`` (random: 35-75 %LEL), then disperses."""
        self._rising, self._leak_rate = True, rate
        self._peak = peak if peak is not None else self.rng.uniform(35, 75)

    def next(self, now: datetime) -> GasReading:
        rng = self.rng
        self._baseline = min(5.0, max(0.0, self._baseline + rng.gauss(0, 0.15)))
        if not self._rising and self._leak == 0 and rng.random() < self.leak_probability:
            self.start_leak(rng.uniform(2.0, 8.0))
        if self._rising:
            self._leak += self._leak_rate
            if self._leak >= self._peak:
                self._rising = False
        elif self._leak > 0:
            self._leak = max(0.0, self._leak * 0.9 - 0.2)  # ventilation
        self.battery = max(0.0, self.battery - 0.001)
        self.seq += 1
        value = self._baseline + self._leak
        if self.gas is GasType.CO:
            value *= 4
        unit = GasUnit.LEL if self.gas is GasType.COMBUSTIBLE else GasUnit.PPM
        return GasReading(sensor_id=self.device_id, gas=self.gas, value=round(min(value, 100.0), 2), unit=unit,
                          measured_at=now, battery=round(self.battery, 1), seq=self.seq)
