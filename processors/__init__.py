"""Stage 2: Kafka -> rules -> InfluxDB metrics and alerts.

``processors.rules`` holds the decisions as pure code (no paho, faust, aiokafka or
influxdb_client); ``processors.app.create_app`` wires them to Faust agents; ``processors.sinks``
holds the InfluxDB writer and the MQTT alert publisher.
"""
