"""What ``idea24 db upgrade`` and ``idea24 db seed`` run (and ``idea24 serve`` on first start)."""

from __future__ import annotations

from dataclasses import dataclass

from backend.clock import Clock
from backend.db import create_engine, create_schema, open_backend
from backend.seed import seed_catalogue, seed_demo
from backend.synthetic import seed_synthetic


@dataclass(frozen=True, slots=True)
class SeedReport:
    demo_rows: int
    synthetic: int


async def upgrade(url: str, revision: str = "head") -> None:
    """Apply the Alembic migrations up to ``revision`` (creates the SQLite file if missing)."""
    engine = create_engine(url)
    try:
        await create_schema(engine, revision)
    finally:
        await engine.dispose()


async def seed(
    url: str,
    secret_key: str,
    demo: bool = True,
    subscribers: int = 0,
    clock: Clock | None = None,
) -> SeedReport:
    """Upgrade, then add what is missing: the catalogue always, the demo subscribers if ``demo``,
    ``subscribers`` synthetic ones, dated from ``clock``'s today. Idempotent."""
    async with open_backend(url, secret_key, clock, migrate=True) as backend:
        demo_rows = 0
        if demo:
            demo_rows = await seed_demo(backend)
        else:
            async with backend.sessionmaker.begin() as session:
                demo_rows = await seed_catalogue(session)
        synthetic = await seed_synthetic(backend, subscribers) if subscribers else 0
    return SeedReport(demo_rows, synthetic)
