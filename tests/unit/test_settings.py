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


def test_kafka_security_reaches_every_client_the_same_way(monkeypatch):
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from deploy.kafka_topics import client_args, faust_credentials
    from models.settings import KafkaSettings

    plain = KafkaSettings()
    assert client_args(plain) == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "PLAINTEXT"}
    assert faust_credentials(plain) is None
    sasl = KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_username="op", sasl_password="pw")
    args = client_args(sasl)
    assert (args["sasl_mechanism"], args["sasl_plain_username"], args["sasl_plain_password"]) == ("SCRAM-SHA-512", "op", "pw")
    faust_args = credentials_to_aiokafka_auth(faust_credentials(sasl))  # what Faust hands aiokafka
    assert {k: faust_args[k] for k in ("security_protocol", "sasl_mechanism", "sasl_plain_username",
                                       "sasl_plain_password")} == {k: v for k, v in args.items() if k != "bootstrap_servers"}
    tls = KafkaSettings(security_protocol="SASL_SSL", sasl_username="op", sasl_password="pw")
    assert client_args(tls)["ssl_context"] is not None
    assert credentials_to_aiokafka_auth(faust_credentials(tls))["security_protocol"] == "SASL_SSL"
    monkeypatch.setenv("SAFECITY_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    errors = config_errors()
    assert errors and errors[0].startswith("SAFECITY_KAFKA") and "sasl_username" in errors[0]


def test_mqtt_tls_files_go_together(monkeypatch):
    monkeypatch.setenv("SAFECITY_MQTT__TLS_CERT_FILE", "/x/client.crt")
    assert any("tls_cert_file and tls_key_file" in e for e in config_errors())


def test_personal_data_retention_covers_the_retro_hunt(monkeypatch):
    monkeypatch.setenv("SAFECITY_KAFKA__PERSONAL_RETENTION_H", "10")
    errors = config_errors()
    assert any(e.startswith("SAFECITY_*:") and "retro_hours" in e for e in errors), errors
    monkeypatch.setenv("SAFECITY_WATCHLIST__RETRO_HOURS", "6")
    assert config_errors() == []
    from deploy.kafka_topics import topic_configs
    from models import topics

    assert topic_configs(Settings().kafka)[topics.KAFKA_TOPICS[topics.MessageKind.REGISTRATION]]["retention.ms"] == \
        str(10 * 3600 * 1000)
