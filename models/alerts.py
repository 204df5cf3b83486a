"""The one registry of alert types: severity, how an alert of the type ends, its default route.

Adding an alert type touches this table and the rule that raises it, nothing else. Severity is
decided here (watch-list leads take theirs from the list entry's priority, see ``lead_severity``).

How an alert ends (``Closing``):

- ``condition``: a state of the world (gas, offline, camera); it clears when its cause does. An
  operator acknowledges it, may resolve it by hand (e.g. a sensor taken out of service).
- ``lead``: a watch-list hit, a lead for a person to verify; it is closed by ``confirm`` or
  ``reject`` (or resolved), never by itself.
- ``notice``: a one-off event (a late upload); an operator acknowledges and resolves it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Severity(enum.StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    WARNING = "warning"
    MAINTENANCE = "maintenance"
    INFO = "info"  # recorded, never notified


#: Highest first; used to order boards and to compare.
SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}


class Closing(enum.StrEnum):
    CONDITION = "condition"
    LEAD = "lead"
    NOTICE = "notice"


@dataclass(frozen=True, slots=True)
class AlertType:
    name: str
    severity: Severity
    closing: Closing
    route: str  # the default route group: gas, maintenance, camera, watchlist, hotel
    description: str


_TYPES = (
    AlertType("gas-level-1", Severity.HIGH, Closing.CONDITION, "gas", "combustible gas at the first alarm level"),
    AlertType("gas-level-2", Severity.CRITICAL, Closing.CONDITION, "gas", "combustible gas at the second alarm level"),
    AlertType("gas-rate-of-rise", Severity.WARNING, Closing.CONDITION, "gas", "combustible gas rising fast"),
    AlertType("co-alarm", Severity.CRITICAL, Closing.CONDITION, "gas", "carbon monoxide dose over the alarm curve"),
    AlertType("gas-site-alarm", Severity.CRITICAL, Closing.CONDITION, "gas", "two or more sensors of a site in alarm"),
    AlertType("sensor-fault", Severity.MAINTENANCE, Closing.CONDITION, "maintenance", "a sensor reports nonsense"),
    AlertType("sensor-offline", Severity.WARNING, Closing.CONDITION, "maintenance", "a sensor stopped reporting"),
    AlertType("sensor-flapping", Severity.WARNING, Closing.CONDITION, "maintenance", "a sensor keeps dropping off"),
    AlertType("low-battery", Severity.MAINTENANCE, Closing.CONDITION, "maintenance", "a sensor's battery is low"),
    AlertType("camera-tampered", Severity.HIGH, Closing.CONDITION, "camera", "covered, moved or no signal"),
    AlertType("camera-frozen", Severity.HIGH, Closing.CONDITION, "camera", "the picture does not change"),
    AlertType("camera-blurred", Severity.WARNING, Closing.CONDITION, "camera", "out of focus"),
    AlertType("camera-image-quality", Severity.WARNING, Closing.CONDITION, "camera", "dark, over-exposed or flat"),
    AlertType("hotel-late-upload", Severity.WARNING, Closing.NOTICE, "hotel", "a registration uploaded late"),
    AlertType("hotel-silent", Severity.WARNING, Closing.CONDITION, "hotel", "a hotel stopped uploading"),
    AlertType("watchlist-vehicle", Severity.HIGH, Closing.LEAD, "watchlist", "a plate read matches a watch list"),
    AlertType("watchlist-person", Severity.HIGH, Closing.LEAD, "watchlist", "a guest matches a watch list"),
    AlertType("watchlist-retro-hit", Severity.HIGH, Closing.LEAD, "watchlist",
              "a newly listed subject was seen in the look-back window"),
)

ALERT_TYPES: dict[str, AlertType] = {t.name: t for t in _TYPES}


class UnknownAlertType(KeyError):
    pass


def alert_type(name: str) -> AlertType:
    try:
        return ALERT_TYPES[name]
    except KeyError:
        raise UnknownAlertType(name) from None


def severity(name: str) -> Severity:
    return alert_type(name).severity


def lead_severity(priority: int) -> Severity:
    """A watch-list lead's severity from its entry's priority (1 most urgent)."""
    return Severity.CRITICAL if priority == 1 else Severity.HIGH if priority <= 3 else Severity.WARNING
