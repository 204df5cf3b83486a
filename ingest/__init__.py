"""Stage 1: MQTT -> Kafka. Validate every device message against models/, key it by device id,
produce it to its Kafka topic (or to the dead-letter topic with a reason), then acknowledge MQTT."""
