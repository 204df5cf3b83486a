"""Faust agents, one module per domain; each ``register(ctx)`` adds its topics, tables and agents."""
