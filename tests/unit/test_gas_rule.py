from datetime import timedelta

import msgspec
import pytest

from models import schemas
from models.schemas import AlertState, GasReading
from models.topics import MessageKind
from processors.rules import gas, notify
from tests import factories as f

LEVELS = gas.GasLevels(25.0, 50.0)


def reading(value, t=0.0, **kw) -> GasReading:
    return schemas.decode_event(MessageKind.GAS_READING,
                                f.payload(f.gas_reading(value=value, measured_at=f.iso(f.at(t)), **kw)))


def run(values):
    state, out = gas.GasState(), []
    for i, v in enumerate(values):
        state, alerts = gas.step(state, reading(v, i), LEVELS)
        out += [(i, a.type, a.state.value) for a in alerts]
    return state, out


def test_levels_fire_and_clear_once_each():
    state, out = run([3, 10, 26, 30, 55, 60, 40, 20, 5])
    assert out == [(2, "gas-level-1", "firing"), (4, "gas-level-2", "firing"),
                   (6, "gas-level-2", "cleared"), (7, "gas-level-1", "cleared")]
    assert state == gas.GasState()


def test_threshold_is_inclusive():
    assert run([25.0])[1] == [(0, "gas-level-1", "firing")]
    assert run([24.99])[1] == []


@pytest.mark.parametrize("value", [None, float("nan")])
def test_missing_values_change_nothing(value):
    state, _ = gas.step(gas.GasState(), reading(30), LEVELS)
    missing = msgspec.structs.replace(reading(1, 1), value=value)  # NaN cannot come over JSON, only null
    assert gas.step(state, missing, LEVELS) == (state, [])


def test_co_is_not_judged_by_lel_levels():
    assert gas.step(gas.GasState(), reading(80.0, gas="co", unit="ppm"), LEVELS) == (gas.GasState(), [])


def test_alert_is_keyed_per_sensor_and_level_and_names_no_person():
    _, alerts = gas.step(gas.GasState(), reading(60), LEVELS)
    assert [a.alert_id for a in alerts] == ["gas-level-1:gas-001", "gas-level-2:gas-001"]
    assert alerts[1].severity is schemas.Severity.CRITICAL and alerts[1].since == f.T0


def test_replayed_transitions_are_not_notified_twice():
    state, fired = gas.step(gas.GasState(), reading(30, 0), LEVELS)
    _, cleared = gas.step(state, reading(10, 60), LEVELS)
    later_state, refired = gas.step(gas.GasState(), reading(30, 120), LEVELS)
    last = None
    for alert in fired + cleared:
        assert notify.should_notify(last, alert)
        last = notify.position(alert)
    for replay in fired + cleared:  # a replay after a crash, in order
        assert not notify.should_notify(last, replay)
    assert notify.should_notify(last, refired[0])  # a new episode is news
    assert refired[0].state is AlertState.FIRING and refired[0].since == f.at(120)
    assert fired[0].since + timedelta(seconds=60) == cleared[0].at
