"""Alembic migrations of the subscriber schema (see backend.db.create_schema)."""
