"""Backend throughput: reads/s and changes/s of summary, usage and activate, SQLite and PostgreSQL.

    .venv/bin/python bench/backend.py [--subscribers 2000] [--seconds 3] [--concurrency 8]
        [--postgres postgresql+asyncpg://postgres@127.0.0.1:5432/test]

Each database is created fresh (SQLite in a temporary directory, PostgreSQL as a throwaway
database next to the given one), migrated and seeded with N synthetic subscribers; then for each
path ``concurrency`` tasks call it on random subscribers for ``seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name shadows the package.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

from backend.db import open_backend
from backend.manage import seed
from backend.seed import SYNTHETIC_BASE

SECRET = "bench-secret"
SERVICES = ["NOCE", "MMS", "ROAMING", "INTERNET1GB", "SMS100", "POCZTAGLOSOWA"]


async def measure(
    call: Callable[[str], Awaitable[object]], n: int, seconds: float, concurrency: int
) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(seed_: int) -> None:
        nonlocal done
        rng = random.Random(seed_)
        while time.perf_counter() < deadline:
            await call(str(SYNTHETIC_BASE + rng.randrange(n)))
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return done / (time.perf_counter() - start)


async def run(url: str, label: str, n: int, seconds: float, concurrency: int) -> None:
    t0 = time.perf_counter()
    await seed(url, SECRET, demo=True, subscribers=n)
    print(f"{label}: seeded {n} synthetic subscribers in {time.perf_counter() - t0:.1f} s")
    async with open_backend(url, SECRET) as backend:
        counter = iter(range(10**9))

        async def activate(msisdn: str) -> object:
            # alternate on/off so every call is a real change with its audit row
            code = SERVICES[next(counter) % len(SERVICES)]
            if (await backend.activate(msisdn, code, "api")).changed:
                return None
            return await backend.deactivate(msisdn, code, "api")

        for name, call in (
            ("summary", backend.summary),
            ("usage", backend.usage),
            ("activate", activate),
        ):
            rate = await measure(call, n, seconds, concurrency)
            kind = "changes/s" if name == "activate" else "reads/s"
            print(f"{label:10} {name:9} {rate:8.0f} {kind} (concurrency {concurrency})")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        await run(
            f"sqlite+aiosqlite:///{tmp}/bench.db",
            "sqlite",
            args.subscribers,
            args.seconds,
            args.concurrency,
        )
    if args.no_postgres:
        return
    import asyncpg

    admin = args.postgres.replace("postgresql+asyncpg", "postgresql")
    name = f"idea24_bench_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    try:
        url = args.postgres.rsplit("/", 1)[0] + "/" + name
        await run(url, "postgresql", args.subscribers, args.seconds, args.concurrency)
    finally:
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
