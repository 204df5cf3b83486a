"""`safecity services start`: a failed start stops only what that call started."""

from dataclasses import dataclass, field

import pytest

from deploy import services


@dataclass
class FakeService:
    name: str
    running: bool = False
    fails: bool = False
    log: list = field(default_factory=list)

    def pid(self):
        return 4242 if self.running else None

    def start(self):  # as Service.start: a running server is left as it is
        if self.running:
            return
        if self.fails:
            raise services.ServiceError(f"{self.name} failed")
        self.running = True
        self.log.append(("start", self.name))

    def stop(self):
        self.running = False
        self.log.append(("stop", self.name))


def test_rollback_spares_a_server_that_was_already_running(monkeypatch):
    log: list = []
    fleet = [FakeService("mosquitto", running=True, log=log), FakeService("kafka", log=log),
             FakeService("influxdb", fails=True, log=log)]
    monkeypatch.setattr(services, "local_services", lambda settings: fleet)
    with pytest.raises(services.ServiceError):
        services.start_all(None)
    assert log == [("start", "kafka"), ("stop", "kafka")]
    assert fleet[0].running  # the broker someone else started is still up


def test_start_all_returns_every_running_service(monkeypatch):
    fleet = [FakeService("mosquitto", running=True), FakeService("kafka")]
    monkeypatch.setattr(services, "local_services", lambda settings: fleet)
    assert [s.name for s in services.start_all(None)] == ["mosquitto", "kafka"]
