from models.settings import Settings, config_errors


def test_defaults_are_loopback_and_valid(monkeypatch):
    for key in list(__import__("os").environ):
        if key.startswith("SAFECITY_"):
            monkeypatch.delenv(key)
    assert config_errors() == []
    s = Settings()
    assert s.mqtt.host == "127.0.0.1" and s.kafka.bootstrap.startswith("127.0.0.1")
    assert "safecity:safecity" not in repr(s) and "safecity:safecity" not in s.model_dump_json()


def test_every_error_names_its_variable(monkeypatch):
    monkeypatch.setenv("SAFECITY_MQTT__PORT", "70000")
    monkeypatch.setenv("SAFECITY_KAFKA__BOOTSTRAP", "localhost")
    monkeypatch.setenv("SAFECITY_INFLUX__URL", "ftp://x")
    monkeypatch.setenv("SAFECITY_MQTT__COLOUR", "red")
    monkeypatch.setenv("SAFECITY_TYPO", "1")
    errors = config_errors()
    for var in ("SAFECITY_MQTT__PORT", "SAFECITY_KAFKA__BOOTSTRAP", "SAFECITY_INFLUX__URL",
                "SAFECITY_MQTT__COLOUR", "SAFECITY_TYPO"):
        assert any(e.startswith(var + ":") for e in errors), (var, errors)


def test_secrets_are_secret(monkeypatch):
    monkeypatch.setenv("SAFECITY_MQTT__PASSWORD", "hunter2")
    s = Settings()
    assert s.mqtt.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(s) and "hunter2" not in s.model_dump_json()
