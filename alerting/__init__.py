"""The alerting stage: alert records and their lifecycle, the store, routing, channels and the API.

processors/ raise alert transitions on Kafka; this stage owns what happens to an alert after that.
"""
