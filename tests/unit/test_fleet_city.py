"""The demo city behaves like a city: rare incidents by default, an alarm storm only when asked."""

from datetime import UTC, datetime, timedelta

from devices.fleet import FleetSpec, build_fleet
from devices.simulators import GasSensorSim
from processors.rules import gas


def gas_alarms(spec: FleetSpec, minutes: int = 30) -> int:
    """Gas alarms (level 1 and 2) the rules raise over ``minutes`` of the simulated city."""
    t0, fired = datetime(2026, 11, 29, tzinfo=UTC), 0
    for sim in build_fleet(spec):
        if not isinstance(sim, GasSensorSim):
            continue
        state, t = gas.GasState(), t0
        while t < t0 + timedelta(minutes=minutes):
            state, alerts = gas.step(state, sim.next(t), gas.GasConfig(interval_s=sim.period_s))
            fired += sum(a.state.value == "firing" and a.type in ("gas-level-1", "gas-level-2", "co-alarm")
                         for a in alerts)
            t += timedelta(seconds=sim.period_s)
    return fired


def test_the_default_city_is_calm_and_busy_is_a_storm():
    calm = gas_alarms(FleetSpec(rate=2.0))
    busy = gas_alarms(FleetSpec(rate=2.0, leak_probability=0.01))
    assert calm <= 12, f"{calm} gas alarms in 30 min from 12 sensors: operators would learn to ignore red"
    assert busy >= 5 * max(calm, 1)
