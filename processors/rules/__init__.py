"""Pure rules: plain functions and classes over plain data, no I/O. Each takes an event and the
state for its key and returns the new state and what to emit (alerts, metric points)."""
