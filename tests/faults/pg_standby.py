"""A private PostgreSQL primary and streaming standby, two clusters on free loopback ports.

Built as the tests of PostgreSQL's own replication are: ``initdb`` a primary, ``pg_basebackup
-R`` a standby from it (``standby.signal`` and ``primary_conninfo`` written), both started with
``pg_ctl`` as the ``postgres`` user (the server refuses to run as root) in a directory of their
own. ``unavailable`` says why when this machine cannot: no server binaries, or not root and not
the postgres user.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.conftest import free_port, unavailable

DATABASE = "idea24"


def server_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        unavailable("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (postgresql)")
    return Path(found[-1]).parent


class PgPair:
    def __init__(self) -> None:
        self.bin = server_bin()
        if os.geteuid() == 0:
            self.as_postgres: list[str] = ["runuser", "-u", "postgres", "--"]
        elif os.environ.get("USER") == "postgres":
            self.as_postgres = []
        else:
            unavailable(
                "a PostgreSQL cluster needs root (runuser -u postgres) or the postgres user"
            )
        self.base = Path(tempfile.mkdtemp(prefix="idea24-pg-"))
        self.ports = {"primary": free_port(), "standby": free_port()}
        self.started: set[str] = set()

    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{self.ports[n]}" for n in ("primary", "standby"))
        return f"postgresql://postgres@{hosts}/{DATABASE}?target_session_attrs=read-write"

    def _run(self, tool: str, *args: str) -> None:
        command = [*self.as_postgres, str(self.bin / tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
        if done.returncode != 0:
            raise AssertionError(f"{tool} failed ({done.returncode}): {done.stderr[-2000:]}")

    def _dir(self, name: str) -> str:
        return str(self.base / name)

    def _ctl(self, name: str, *args: str) -> None:
        self._run("pg_ctl", "-D", self._dir(name), *args)

    def start(self, name: str) -> None:
        options = (
            f"-p {self.ports[name]} -k {self.base} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c full_page_writes=off -c wal_level=replica -c max_wal_senders=4"
            " -c hot_standby=on -c wal_receiver_status_interval=1"
        )
        self._ctl(name, "-o", options, "-l", str(self.base / f"{name}.log"), "-w", "start")
        self.started.add(name)

    def build(self) -> None:
        if self.as_postgres:
            shutil.chown(self.base, "postgres", "postgres")
        self._run("initdb", "-D", self._dir("primary"), "-A", "trust", "-U", "postgres", "-N")
        self.start("primary")
        self._psql("primary", f"CREATE DATABASE {DATABASE}")
        self._run(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(self.ports["primary"]), "-U",
            "postgres", "-D", self._dir("standby"), "-R", "-X", "stream", "-c", "fast",
        )  # fmt: skip
        self.start("standby")

    def _psql(self, name: str, sql: str) -> str:
        command = [
            *self.as_postgres, str(self.bin / "psql"), "-h", "127.0.0.1", "-p",
            str(self.ports[name]), "-U", "postgres", "-At", "-c", sql,
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=30)
        return done.stdout.strip()

    async def streaming(self, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        while self._psql("primary", "SELECT count(*) FROM pg_stat_replication") != "1":
            assert time.monotonic() < deadline, "the standby does not stream"
            await asyncio.sleep(0.1)

    def stop(self, name: str, mode: str = "fast") -> None:
        self._ctl(name, "-m", mode, "-w", "stop")
        self.started.discard(name)

    def promote(self, name: str = "standby") -> None:
        self._ctl(name, "-w", "promote")

    def close(self) -> None:
        for name in list(self.started):
            with contextlib.suppress(AssertionError, subprocess.SubprocessError):
                self.stop(name, "immediate")
        shutil.rmtree(self.base, ignore_errors=True)


@asynccontextmanager
async def pg_pair() -> AsyncIterator[PgPair]:
    pair = PgPair()
    try:
        await asyncio.to_thread(pair.build)
        await pair.streaming()
        yield pair
    finally:
        await asyncio.to_thread(pair.close)
