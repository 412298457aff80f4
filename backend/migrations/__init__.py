"""Alembic migrations of the subscriber schema (see backend.engine.create_schema)."""
