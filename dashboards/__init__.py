"""Grafana wall displays, generated from code (``python -m dashboards.build``) and committed."""
