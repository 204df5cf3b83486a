"""A device's state on the console: from the pipeline's open alerts first, then from when it was
last heard of; leads and notices say nothing of a device's health."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from console.devices import Facts, device_view
from console.live import change_of
from models.registry import DeviceEntry
from models.topics import DeviceKind

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
GAS = DeviceEntry(id="gas-1", kind=DeviceKind.GAS, district="xuhui", site="bldg-1", lat=31.2, lon=121.4, interval_s=60)
CAMERA = DeviceEntry(id="cp-1", kind=DeviceKind.CAMERA, district="pudong")


def alert(alert_type: str, severity: str = "warning") -> dict:
    return {"alert_id": f"{alert_type}:x", "type": alert_type, "severity": severity, "status": "firing", "extra": 1}


def state(entry, facts=Facts(last_seen=NOW - timedelta(seconds=30)), alerts=()):
    return device_view(entry, facts, list(alerts), NOW).state


def test_states_follow_the_pipelines_own_conclusions_worst_first():
    assert state(GAS) == "online"
    assert state(GAS, alerts=[alert("low-battery", "maintenance")]) == "low-battery"
    assert state(GAS, alerts=[alert("low-battery"), alert("sensor-fault")]) == "faulty"
    assert state(GAS, alerts=[alert("sensor-fault"), alert("sensor-offline")]) == "offline"
    assert state(GAS, alerts=[alert("sensor-offline"), alert("gas-level-1", "high")]) == "alarm"
    assert state(CAMERA, alerts=[alert("camera-frozen", "high")]) == "faulty"


def test_a_lead_or_a_notice_does_not_change_a_devices_state():
    assert state(CAMERA, alerts=[alert("watchlist-vehicle", "critical")]) == "online"
    assert state(CAMERA, alerts=[alert("hotel-late-upload")]) == "online"
    view = device_view(CAMERA, Facts(last_seen=NOW), [alert("watchlist-vehicle", "critical")], NOW)
    assert view.alerts == [{"alert_id": "watchlist-vehicle:x", "type": "watchlist-vehicle", "severity": "critical",
                            "status": "firing"}]  # listed, without anything else the record carries


def test_without_an_alert_the_last_message_decides():
    assert state(GAS, Facts()) == "unknown"
    assert state(GAS, Facts(last_seen=NOW - timedelta(seconds=179))) == "online"  # within 3 intervals
    assert state(GAS, Facts(last_seen=NOW - timedelta(seconds=181))) == "offline"
    assert state(GAS, Facts(last_seen=NOW, online=False)) == "offline"  # its own last will
    assert state(CAMERA, Facts(last_seen=NOW - timedelta(minutes=14))) == "online"  # a camera's default: 5 min


def test_the_view_carries_place_and_facts():
    v = device_view(GAS, Facts(last_seen=NOW, battery=41.0), [], NOW)
    assert (v.id, v.kind, v.district, v.site, v.lat, v.lon, v.battery) == ("gas-1", "gas", "xuhui", "bldg-1",
                                                                           31.2, 121.4, 41.0)


def test_a_board_hears_only_which_alert_changed():
    assert change_of(b'{"alert_id": "gas-level-1:s1", "version": 3, "summary": "x"}') == {
        "alert_id": "gas-level-1:s1", "version": 3}
    assert change_of(b"") is None  # the emptied retained message of a closed alert
    assert change_of(b"not json") is None and change_of(b'["x"]') is None and change_of(b'{"a": 1}') is None
    assert change_of(b'{"alert_id": "a", "version": "7"}') == {"alert_id": "a", "version": 0}
