from datetime import timedelta

import pytest

from ingest.validate import Rejected, validate
from models.registry import RegistryError, parse_registry
from models.schemas import Alert, AlertState, Severity
from processors.rules.correlation import SiteState, site_step
from tests import factories as f


def alarm(sensor: str, state: str, t: float, kind: str = "gas-level-1") -> Alert:
    return Alert(alert_id=f"{kind}:{sensor}", type=kind, severity=Severity.HIGH, state=AlertState(state),
                 device_id=sensor, since=f.at(t), at=f.at(t), summary="")


def test_two_sensors_in_alarm_within_the_window_escalate_once():
    s, out = site_step(SiteState(), "b1", alarm("g1", "firing", 0))
    assert out == []
    s, out = site_step(s, "b1", alarm("g2", "firing", 120))
    assert [(a.type, a.state.value, a.severity.value, a.device_id) for a in out] == [
        ("gas-site-alarm", "firing", "critical", "b1")]
    s, out = site_step(s, "b1", alarm("g3", "firing", 130))
    assert out == []  # already escalated
    s, out = site_step(s, "b1", alarm("g1", "cleared", 200))
    assert out == []  # two still in alarm
    s, out = site_step(s, "b1", alarm("g2", "cleared", 210))
    assert [(a.state.value, a.since) for a in out] == [("cleared", f.at(120))]


def test_a_sensor_stays_in_alarm_while_any_of_its_alarms_fires():
    s, _ = site_step(SiteState(), "b1", alarm("g1", "firing", 0))
    s, _ = site_step(s, "b1", alarm("g1", "firing", 5, kind="gas-level-2"))
    s, out = site_step(s, "b1", alarm("g2", "firing", 10))
    assert [a.state.value for a in out] == ["firing"]
    s, out = site_step(s, "b1", alarm("g1", "cleared", 60, kind="gas-level-2"))
    assert out == []  # g1's level 1 still fires: two sensors are still in alarm
    s, out = site_step(s, "b1", alarm("g1", "cleared", 90))
    assert [a.state.value for a in out] == ["cleared"]


def test_alarms_far_apart_do_not_correlate_and_faults_never_do():
    s, _ = site_step(SiteState(), "b1", alarm("g1", "firing", 0))
    s, out = site_step(s, "b1", alarm("g2", "firing", 301))
    assert out == []
    assert site_step(s, "b1", alarm("g3", "firing", 302, kind="sensor-fault")) == (s, [])


YAML = """
devices:
  - {id: gas-001, kind: gas, site: b1, interval_s: 30, thresholds: {level1_lel: 20}}
  - {id: cp-001, kind: camera, district: xuhui, lat: 31.2, lon: 121.4}
"""


def test_registry_yaml_and_csv():
    reg = parse_registry(YAML, "yaml")
    assert reg["gas-001"].thresholds == {"level1_lel": 20.0} and reg["cp-001"].kind.value == "camera"
    csv = "id,kind,site,interval_s,level1_lel\ngas-002,gas,b2,15,\ngas-003,gas,,,18\n"
    reg = parse_registry(csv, "csv")
    assert reg["gas-002"].interval_s == 15 and reg["gas-003"].thresholds == {"level1_lel": 18.0}


@pytest.mark.parametrize(("text", "fmt", "needle"), [
    ("devices:\n  - {id: g1, kind: drone}\n", "yaml", "kind"),
    ("devices:\n  - {id: g1, kind: gas, thresholds: {level9: 1}}\n", "yaml", "level9"),
    ("devices:\n  - {id: g1, kind: gas}\n  - {id: g1, kind: gas}\n", "yaml", "twice"),
    ("id,kind,lat\ng1,gas,200\n", "csv", "line 2"),
])
def test_registry_errors_are_clear(text, fmt, needle):
    with pytest.raises(RegistryError, match=needle):
        parse_registry(text, fmt)


def test_ingest_rejects_unknown_devices_and_wrong_kinds():
    reg = parse_registry(YAML, "yaml")
    now = f.T0 + timedelta(seconds=1)
    ok = validate("safecity/v1/gas/gas-001/reading", f.payload(f.gas_reading()), now, reg.get)
    assert not isinstance(ok, Rejected)
    unknown = validate("safecity/v1/gas/gas-009/reading", f.payload(f.gas_reading(sensor_id="gas-009")), now, reg.get)
    assert isinstance(unknown, Rejected) and unknown.dead_letter.reason_code == "unknown-device"
    wrong = validate("safecity/v1/gas/cp-001/reading", f.payload(f.gas_reading(sensor_id="cp-001")), now, reg.get)
    assert isinstance(wrong, Rejected) and wrong.dead_letter.reason_code == "device-kind-mismatch"
