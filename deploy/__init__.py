"""Local servers for development, the demo and the tests: install, start, stop by PID."""

from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent / "demo"
