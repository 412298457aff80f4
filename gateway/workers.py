"""``idea24 serve --workers N``: one supervisor, N worker processes on one machine.

Theory of operation. The supervisor opens the HTTP listening socket once and starts N workers,
each ``idea24 serve`` with the same arguments plus ``--worker I/N`` and the socket's descriptor
(inherited, so every worker accepts on the one port and the kernel hands each connection to one
of them). Each worker runs the whole server — binds, dialogs, outbox sender, HTTP — on the shared
Redis and database; nothing of a subscriber lives in a worker, so any worker may serve any turn.

- Binds: the configured ``--smsc`` binds are dealt out over the workers (bind j to worker
  j mod N), or, for a URL with ``binds_per_worker=1``, opened by every worker. An SMSC account
  allowing fewer binds (``max_binds``) than that adds up to is refused at start.
- A worker that exits is started again after a back-off (doubling from ``backoff`` to
  ``backoff_cap``, back to the start after ``stable`` seconds of running). What it had taken from
  the outbox stays pending under its consumer name: the restarted worker takes it back at start
  (``gateway.binds.dead_local_consumer``), and any other sender does after the lease.
- A worker whose first start fails on its configuration (exit status 2: it printed why) stops
  the whole server with the same status: the next start would fail alike.
- SIGTERM or SIGINT to the supervisor: every worker gets SIGTERM and drains (turns, outbox,
  unbind); one still running after ``drain`` seconds is killed.
- /metrics: every worker counts into prometheus_client's multiprocess files in one directory the
  supervisor owns (``PROMETHEUS_MULTIPROC_DIR``), so whichever worker answers a scrape reports
  the sum (``gateway.metrics``); a dead worker's live gauges are dropped.
- A worker whose supervisor is gone (killed without a chance to stop it) stops itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.errors import ConfigError
from gateway.settings import Settings, SmscProfile

log = logging.getLogger(__name__)

#: The environment variable prometheus_client reads at import to count in shared files.
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: A worker that stops on its configuration: the same as ``idea24``'s own exit status for it.
CONFIG_EXIT = 2


@dataclass(frozen=True, slots=True)
class WorkerSlot:
    """Who this worker is among its supervisor's: ``index`` of ``count``, and where the
    workers' metrics meet."""

    index: int
    count: int
    metrics_dir: Path
    supervisor_pid: int

    @classmethod
    def parse(cls, value: str, listen_fd: int | None) -> WorkerSlot:
        index, _, count = value.partition("/")
        metrics_dir = os.environ.get(METRICS_DIR_ENV)
        if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
            raise ConfigError(f"--worker: expected I/N with I < N, got {value!r}")
        if listen_fd is None or not metrics_dir:
            raise ConfigError(f"--worker: started without --listen-fd or {METRICS_DIR_ENV}")
        return cls(int(index), int(count), Path(metrics_dir), os.getppid())


def worker_count(value: str | None) -> int:
    """``--workers``: a number, or ``auto`` for the CPUs this process may run on."""
    if value is None:
        return 1
    if value == "auto":
        return len(os.sched_getaffinity(0))
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(
            f"--workers: expected a number of processes (1 or more) or auto, got {value!r}"
        )
    return int(value)


def assign_binds(profiles: Sequence[SmscProfile], count: int) -> list[tuple[SmscProfile, ...]]:
    """Each worker's binds: ``binds_per_worker`` ones in every worker, the others dealt out in
    turn; ConfigError when an account would get more binds than its ``max_binds``."""
    shares: list[list[SmscProfile]] = [[] for _ in range(count)]
    dealt = 0
    for profile in profiles:
        if profile.binds_per_worker:
            for share in shares:
                share.append(profile)
        else:
            shares[dealt % count].append(profile)
            dealt += 1
    opened = Counter(p.name for share in shares for p in share)
    for profile in profiles:
        allowed = min(
            (p.max_binds for p in profiles if p.name == profile.name and p.max_binds), default=0
        )
        if allowed and opened[profile.name] > allowed:
            raise ConfigError(
                f"--smsc {profile.name}: {count} worker(s) would open {opened[profile.name]} binds,"
                f" the account allows {allowed} (max_binds); use fewer workers or binds"
            )
    return [tuple(share) for share in shares]


def check_workers(settings: Settings, count: int) -> None:
    """Refuse what N workers cannot serve, each with one line naming what to change."""
    if count > 1 and not settings.redis_url:
        raise ConfigError(
            f"--workers {count}: workers share dialog sessions through Redis; set"
            " IDEA24_REDIS_URL (the in-memory session store belongs to one process)"
        )
    if count > 1 and settings.uses_simulator:
        raise ConfigError(
            f"--workers {count}: the bundled simulator runs inside one process; give the SMSC"
            " with --smsc or IDEA24_SMSC (for instance a separate `idea24 simulator`)"
        )
    assign_binds(settings.smsc, count)


def listen(settings: Settings) -> socket.socket:
    """The HTTP socket every worker accepts on, inheritable."""
    try:
        sock = socket.create_server((settings.http_host, settings.http_port), backlog=1024)
    except OSError as exc:
        raise ConfigError(
            f"IDEA24_HTTP: cannot listen on {settings.http_host}:{settings.http_port}"
            f" ({exc.strerror}); is another idea24 running? choose another with --http"
        ) from exc
    sock.set_inheritable(True)
    return sock


class Supervisor:
    """Starts ``count`` workers (``command(index, fd)`` each), keeps them running, drains them."""

    def __init__(
        self,
        command: Sequence[str],
        count: int,
        sock: socket.socket,
        *,
        backoff: float = 0.5,
        backoff_cap: float = 30.0,
        stable: float = 60.0,
        drain: float = 30.0,
    ) -> None:
        self.command = list(command)
        self.count = count
        self.sock = sock
        self.backoff, self.backoff_cap, self.stable, self.drain = (
            backoff,
            backoff_cap,
            stable,
            drain,
        )
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        self.restarts = 0
        self._stop = asyncio.Event()
        self._status = 0

    def argv(self, index: int) -> list[str]:
        fd = str(self.sock.fileno())
        return [*self.command, "--worker", f"{index}/{self.count}", "--listen-fd", fd]

    async def run(self, metrics_dir: Path) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop.set)
        env = {**os.environ, METRICS_DIR_ENV: str(metrics_dir)}
        keepers = [asyncio.create_task(self._keep(i, env, metrics_dir)) for i in range(self.count)]
        try:
            await self._stop.wait()
        finally:
            await self._drain_all()
            for keeper in keepers:
                keeper.cancel()
            await asyncio.gather(*keepers, return_exceptions=True)
        return self._status

    async def _keep(self, index: int, env: dict[str, str], metrics_dir: Path) -> None:
        from prometheus_client import multiprocess

        loop = asyncio.get_running_loop()
        delay, first = self.backoff, True
        while not self._stop.is_set():
            started = loop.time()
            proc = await asyncio.create_subprocess_exec(
                *self.argv(index), pass_fds=(self.sock.fileno(),), env=env
            )
            self.procs[index] = proc
            status = await proc.wait()
            multiprocess.mark_process_dead(proc.pid, str(metrics_dir))  # type: ignore[no-untyped-call]
            if self._stop.is_set():
                return
            if first and status == CONFIG_EXIT:
                self._status = CONFIG_EXIT
                self._stop.set()
                return
            first = False
            if loop.time() - started >= self.stable:
                delay = self.backoff
            log.warning(
                "worker %d (pid %d) exited with status %s; starting it again in %.1f s",
                index,
                proc.pid,
                status,
                delay,
            )
            self.restarts += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            delay = min(delay * 2, self.backoff_cap)

    async def _drain_all(self) -> None:
        live = [p for p in self.procs.values() if p.returncode is None]
        for proc in live:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in live)), self.drain)
        except TimeoutError:
            for proc in live:
                if proc.returncode is None:
                    log.warning(
                        "worker pid %d still running after %.0f s: killed", proc.pid, self.drain
                    )
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
            await asyncio.gather(*(p.wait() for p in live))


def supervise(
    settings: Settings,
    count: int,
    argv: Sequence[str],
    prepare: Callable[[], Coroutine[Any, Any, None]],
) -> int:
    """Run ``count`` workers of ``idea24 <argv>`` until SIGTERM / SIGINT; the exit status.
    ``prepare`` (migrate and seed) runs once before them, so they do not race on a fresh
    database."""
    check_workers(settings, count)
    asyncio.run(prepare())
    sock = listen(settings)
    metrics_dir = Path(tempfile.mkdtemp(prefix="idea24-metrics-"))
    command = [sys.executable, "-m", "gateway.cli", *argv]
    print(f"idea24: supervisor pid {os.getpid()}, {count} workers", flush=True)
    try:
        return asyncio.run(Supervisor(command, count, sock).run(metrics_dir))
    finally:
        sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)


async def watch_supervisor(slot: WorkerSlot, stop: asyncio.Event, every: float = 1.0) -> None:
    """Set ``stop`` when this worker's supervisor is gone (its parent changed)."""
    while not stop.is_set():
        if os.getppid() != slot.supervisor_pid:
            log.warning("supervisor gone: worker %d stops", slot.index)
            stop.set()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
