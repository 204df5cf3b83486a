"""Alembic environment: the alert store hands its open connection in (``config.attributes``)."""

from alembic import context

from alerting.store import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
