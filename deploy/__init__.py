"""Local servers for development, the demo and the tests: install, start, stop by PID."""
