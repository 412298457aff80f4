"""Shared fixtures: real Redis and PostgreSQL, free ports.

Under ``CI=true`` a test that cannot reach Redis or PostgreSQL fails; elsewhere it skips with the
reason. Each test session gets its own PostgreSQL database and each Redis test its own key prefix,
so parallel runs never see each other's data.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.tls_certs import Certs

REDIS_URL = os.environ.get("IDEA24_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_ADMIN_DSN = os.environ.get("IDEA24_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


async def kill_connections(database: str) -> int:
    """Terminate every server connection to ``database`` but the asking one, as a PostgreSQL
    restart or an operator's ``pg_terminate_backend`` would; how many were killed."""
    import asyncpg

    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        return int(
            await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                database,
            )
        )
    finally:
        await admin.close()


def unavailable(reason: str) -> None:
    """Fail under CI, skip elsewhere."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: required)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def unused_port() -> int:
    return free_port()


def _tcp_reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_server_url() -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(REDIS_URL)
    if not _tcp_reachable(parts.hostname or "127.0.0.1", parts.port or 6379):
        unavailable(f"Redis not reachable at {REDIS_URL}")
    return REDIS_URL


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix unique to this test; keys are removed afterwards by tests that use it."""
    return f"t{secrets.token_hex(4)}"


@pytest.fixture
async def redis_client(redis_server_url: str, redis_prefix: str) -> AsyncIterator[object]:
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_server_url)
    try:
        yield client
    finally:
        async for key in client.scan_iter(match=f"*{redis_prefix}*"):
            await client.delete(key)
        await client.aclose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (dropped at the end)."""
    yield from _fresh_database()


@pytest.fixture
def own_postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test (e.g. a whole server's walk with demo data)."""
    yield from _fresh_database()


def _fresh_database() -> Iterator[str]:
    from urllib.parse import urlsplit

    parts = urlsplit(PG_ADMIN_DSN)
    if not _tcp_reachable(parts.hostname or "127.0.0.1", parts.port or 5432):
        unavailable(f"PostgreSQL not reachable at {PG_ADMIN_DSN}")
    import asyncpg

    name = f"idea24_test_{secrets.token_hex(4)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        unavailable(f"PostgreSQL at {PG_ADMIN_DSN} refused CREATE DATABASE: {exc}")
    netloc = parts.netloc
    yield f"postgresql+asyncpg://{netloc}/{name}"
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """Fresh TLS certificates in a temp dir (tests/tls_certs.py)."""
    from tests.tls_certs import make_certs

    return make_certs(tmp_path_factory.mktemp("certs"))


PEERS = Path(__file__).resolve().parent / "peers"


@pytest.fixture(scope="session")
def npm_peers() -> Path:
    """tests/peers (SMPP peers on the npm ``smpp`` package) with node_modules installed (npm
    install once, when missing)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        unavailable("node and npm are needed for the interop tests (apt-get install nodejs npm)")
    if not (PEERS / "node_modules" / "smpp").is_dir():
        try:
            subprocess.run(
                [str(npm), "install", "--prefix", str(PEERS), "--no-audit", "--no-fund"],
                check=True,
                capture_output=True,
                timeout=180,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            unavailable(f"npm install --prefix tests/peers failed: {exc}")
    return PEERS
