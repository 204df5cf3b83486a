"""Test-wide settings: hypothesis without per-example deadlines (a loaded CI machine is slow, not wrong)."""

from hypothesis import settings

settings.register_profile("safecity", deadline=None)
settings.load_profile("safecity")
