"""The device registry file, re-read when it changes: an unknown id triggers a check of the file,
so a device added to the registry is accepted without a restart and without a race."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from models.registry import DeviceEntry, RegistryError, parse_registry

logger = logging.getLogger(__name__)


class RegistryFile:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, DeviceEntry] = {}
        self._stamp: tuple[int, int] | None = None
        self.refresh()

    @property
    def enforced(self) -> bool:
        """Without a registry file every device is accepted (development); with one, only those listed."""
        return self.path is not None

    def refresh(self) -> bool:
        if self.path is None:
            return False
        st = os.stat(self.path)
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return False
        fmt = "csv" if self.path.suffix.lower() == ".csv" else "yaml"
        try:
            self.entries = parse_registry(self.path.read_text(encoding="utf-8"), fmt)
        except RegistryError as exc:
            if self._stamp is None:
                raise
            logger.error("registry %s is invalid, keeping the previous one: %s", self.path, exc)
        self._stamp = stamp
        logger.info("device registry: %d devices from %s", len(self.entries), self.path)
        return True

    def stamp(self) -> tuple[int, int] | None:
        """Which version of the file is loaded (changes when it is re-read)."""
        return self._stamp

    def get(self, device_id: str) -> DeviceEntry | None:
        entry = self.entries.get(device_id)
        if entry is None and self.path is not None and self.refresh():
            entry = self.entries.get(device_id)
        return entry
