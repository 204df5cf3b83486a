"""The operator console: the alert API, live alerts, evidence, devices and map in the browser."""
