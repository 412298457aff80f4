"""Processes a fault test kills: ``idea24 serve`` bound to the test's simulator, a private Redis.

Both are started on free ports and always stopped by their context manager, so a failed test
leaves nothing running.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from simulator.controller import SimulatorController
from tests.conftest import free_port, unavailable
from tests.e2e.serve import idea24_command
from tests.faults.harness import SECRET, SHORT_CODE


class ServeProcess:
    """``idea24 serve --smsc smpp://…`` against the simulator running in the test process."""

    def __init__(
        self,
        sim: SimulatorController,
        database_url: str,
        workdir: Path,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
    ) -> None:
        host, port = sim.smpp_address
        self.args = list(args)
        self.smsc = f"smpp://idea24:idea24@{host}:{port}?window=32&source_addr={SHORT_CODE}"
        self.database_url = database_url
        self.workdir = workdir
        self.extra_env = dict(env or {})
        self.http_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log_path = workdir / "serve.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def start(self, within: float = 60.0) -> None:
        env = {
            **os.environ,
            "IDEA24_DATABASE_URL": self.database_url,
            "IDEA24_SECRET_KEY": SECRET,
            "IDEA24_API_KEY": "faults-api-key",
            "IDEA24_SHORT_CODE": SHORT_CODE,
            "IDEA24_LOG_FORMAT": "json",
            **self.extra_env,
        }
        cmd = [
            *idea24_command(),
            "serve",
            "--smsc",
            self.smsc,
            "--http",
            f"127.0.0.1:{self.http_port}",
            *self.args,
        ]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.workdir
            )
        self.starts += 1
        await self._wait_healthy(within)

    async def _wait_healthy(self, within: float) -> None:
        assert self.proc is not None
        url = f"http://127.0.0.1:{self.http_port}/healthz"
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"idea24 serve exited:\n{self.log()[-3000:]}")
                try:
                    async with http.get(url) as r:
                        if r.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"idea24 serve not healthy in {within}s:\n{self.log()[-3000:]}")

    def workers(self) -> list[int]:
        """The process ids of a supervisor's workers (``--workers N``), oldest first."""
        assert self.proc is not None
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return sorted(int(pid) for pid in path.read_text().split())

    def kill(self) -> None:
        """SIGKILL: no unbind, no drain, no cleanup — a power cut as far as the process knows."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@asynccontextmanager
async def serve_process(
    sim: SimulatorController,
    database_url: str,
    workdir: Path,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
) -> AsyncIterator[ServeProcess]:
    served = ServeProcess(sim, database_url, workdir, env, args)
    try:
        await served.start()
        yield served
    finally:
        served.stop()


class RedisProcess:
    """A private ``redis-server`` on a free port, with an append-only file that is fsynced on
    every write (so a restart keeps what Redis acknowledged, as a production setup must); with
    ``persist=False`` nothing is written, so a restart starts empty (a cache-style Redis, or a
    failover to a replica that had not caught up)."""

    def __init__(self, workdir: Path, *, persist: bool = True) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.persist = persist
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        if shutil.which("redis-server") is None:
            unavailable("redis-server is not installed (apt-get install redis-server)")
        self.proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.persist else "no",
                "--appendfsync",
                "always",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        client = aioredis.from_url(self.url)
        try:
            for _ in range(100):
                try:
                    await client.ping()
                    return
                except (RedisError, OSError):
                    await asyncio.sleep(0.05)
        finally:
            await client.aclose()
        raise AssertionError("private redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def pause(self) -> None:
        """SIGSTOP: the port stays open but nothing answers (a hung or partitioned Redis)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


@asynccontextmanager
async def redis_process(workdir: Path, *, persist: bool = True) -> AsyncIterator[RedisProcess]:
    server = RedisProcess(workdir, persist=persist)
    await server.start()
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.resume()
        server.kill()


class SentinelCluster:
    """A private master, one replica and three sentinels (``redis-server --sentinel``) on free
    loopback ports, with tight timeouts: a master is judged down after ``down_after_ms`` and
    the failover is retried after ``failover_timeout_ms``."""

    SERVICE = "idea24"

    def __init__(
        self, workdir: Path, down_after_ms: int = 1000, failover_timeout_ms: int = 3000
    ) -> None:
        self.workdir = workdir
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.ports = {"master": free_port(), "replica": free_port()}
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{self.SERVICE}/0"

    def _spawn(self, port: int, argv: list[str]) -> None:
        self.procs[port] = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.workdir
        )

    def _server(self, port: int, *extra: str) -> list[str]:
        data = self.workdir / f"redis-{port}"
        data.mkdir(exist_ok=True)
        return [
            "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(data), *extra,
        ]  # fmt: skip

    async def start(self) -> None:
        if shutil.which("redis-server") is None:
            unavailable("redis-server is not installed (apt-get install redis-server)")
        master, replica = self.ports["master"], self.ports["replica"]
        self._spawn(master, self._server(master))
        self._spawn(replica, self._server(replica, "--replicaof", "127.0.0.1", str(master)))
        for port in self.sentinel_ports:
            conf = self.workdir / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.workdir}\n"
                f"sentinel monitor {self.SERVICE} 127.0.0.1 {master} 2\n"
                f"sentinel down-after-milliseconds {self.SERVICE} {self.down_after_ms}\n"
                f"sentinel failover-timeout {self.SERVICE} {self.failover_timeout_ms}\n"
                f"sentinel parallel-syncs {self.SERVICE} 1\n"
            )
            self._spawn(port, ["redis-server", str(conf), "--sentinel"])
        await self._ready()

    async def _ready(self, within: float = 30.0) -> None:
        """The replica in sync, and every sentinel knowing it and the two other sentinels."""
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                async with aioredis.Redis(port=self.ports["replica"]) as replica:
                    info = await replica.info("replication")
                ok = info.get("master_link_status") == "up"
                for port in self.sentinel_ports:
                    async with aioredis.Redis(port=port) as sentinel:
                        state = await sentinel.sentinel_master(self.SERVICE)
                    ok = ok and int(state["num-slaves"]) == 1
                    ok = ok and int(state["num-other-sentinels"]) == 2
                if ok:
                    return
            except (RedisError, OSError):
                pass
            await asyncio.sleep(0.1)
        raise AssertionError("sentinel cluster did not settle")

    async def master_port(self) -> int:
        import redis.asyncio as aioredis

        async with aioredis.Redis(port=self.sentinel_ports[0]) as sentinel:
            _host, port = await sentinel.sentinel_get_master_addr_by_name(self.SERVICE)
        return int(port)

    async def kill_master(self) -> int:
        """SIGKILL the current master; returns its port."""
        port = await self.master_port()
        proc = self.procs[port]
        proc.kill()
        proc.wait()
        return port

    async def until_promoted(self, old: int, within: float = 30.0) -> float:
        """Seconds until the sentinels name a new master."""
        began = time.monotonic()
        while await self.master_port() == old:
            assert time.monotonic() - began < within, "no failover"
            await asyncio.sleep(0.05)
        return time.monotonic() - began

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@asynccontextmanager
async def sentinel_cluster(workdir: Path) -> AsyncIterator[SentinelCluster]:
    cluster = SentinelCluster(workdir)
    try:
        await cluster.start()
        yield cluster
    finally:
        cluster.stop()
