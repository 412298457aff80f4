"""Alembic environment, driven programmatically by ``backend.engine.create_schema``.

The caller hands over an open (sync-facade) connection in ``config.attributes["connection"]``;
there is no alembic.ini, so the migrations run from an installed package.
"""

from __future__ import annotations

from alembic import context

from backend.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through backend.manage.upgrade(url)")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
