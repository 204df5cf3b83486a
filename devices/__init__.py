"""Stage 0: field devices. Simulators for checkpoint cameras, hotel property systems and gas
sensors, and the device-side MQTT client (own client id, retained online status, offline last
will, QoS 1, reconnect)."""
