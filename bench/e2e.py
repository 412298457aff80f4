"""End-to-end turns/s and turn latency through the real SMPP link, beside an echo ceiling.

    .venv/bin/python bench/e2e.py [--quick] [--json] [--subscribers 3000] [--seconds 8]
        [--concurrency 100] [--pairs sqlite-memory,postgresql-redis] [--scenarios pakiet,wlacz,ussd]
    .venv/bin/python bench/e2e.py --rate 500 --duration 30      # open loop: fixed offered rate
    .venv/bin/python bench/e2e.py --processes 2 --pairs postgresql-redis   # two servers, shared
    .venv/bin/python bench/e2e.py --quick --processes 2 --rounds 5 --scenarios pakiet  # 1 vs 2
    .venv/bin/python bench/e2e.py --quick --processes 2 --rounds 3 --server-cpus 0.5  # capped
    .venv/bin/python bench/e2e.py --quick --tls        # the SMPP link over TLS (smpps://)

Theory of operation. This process runs the SMSC simulator (``simulator.SimulatorController`` on a
free loopback port) and the load driver; the server under test is a real ``idea24 serve``
subprocess bound to that simulator with ``--smsc``, so every turn crosses the SMPP link both ways:
the simulator sends the MO as deliver_sm, the server runs the dialog turn, queues the reply in its
outbox and submits it; the simulator records it at the handset. Turn latency is "MO injected →
reply at the handset": for SMS from just before ``inject_mo`` to the ``at`` stamp of the MT the
simulator stored (read from its event stream), for USSD the time ``dial`` takes to return the
network's screen.

Per storage pair (SQLite + in-memory sessions, PostgreSQL + Redis) the database is created fresh
and seeded with N synthetic subscribers 48700000000+i (subscriber code = last 6 digits, as
``idea24 db seed --subscribers N``), one server is started, and each scenario runs for
``--seconds`` after a short warm-up, closed loop: ``--concurrency`` virtual handsets each own a
disjoint slice of subscribers, so one subscriber never has two turns in flight.

Scenarios: ``pakiet`` (SMS ``PAKIET``, a read), ``wlacz`` (SMS ``WLACZ NOCE`` then ``TAK <code>``,
a real change with its audit row; the next round switches it off with ``WYLACZ``), ``ussd``
(``*100#`` → ``1`` Konto → ``1`` Adres; the session stays open, as a handset leaves it). Every
MO counts as one turn. A reply that is not what the scenario expects counts as an error.

The ceiling is the same SMS traffic answered by ``--echo-server``: a ``BindPool`` with a memory
outbox whose sink echoes the text back (no dialog, store or backend) in its own process.

CPU seconds per 1,000 turns and peak RSS are the server process's own (``/proc``); Redis and
PostgreSQL work is not in them.

``--processes N`` starts N ``idea24 serve`` subprocesses instead of one, each with its own bind
to the same simulator account; the simulator routes each MO (and USSD step) round-robin over the
account's receiving binds, so the N servers share the load and one PostgreSQL database and one
Redis, and a subscriber's consecutive turns land on different processes (their dialog state is in
Redis). CPU and peak RSS are then summed over the N processes. Only pairs whose state is shared
between processes qualify: with SQLite + in-memory sessions a second process would hold its own
dialog sessions, so N > 1 runs PostgreSQL + Redis only. The echo ceiling stays one process.

``--rounds K`` measures K times on the same seeded database, each time with fresh servers; with
``--processes N > 1`` each round runs one server and then N (the next round N and then one), and
the run ends with N's turns/s over one's, round by round, and their median (``scaling`` in
``--json``). The machine's speed drifts between minutes; rounds close together and alternating
order keep that drift out of the comparison.
With ``--rounds`` or ``--processes`` above one, 20,000 subscribers are seeded unless
``--subscribers`` says otherwise: minutes of thousands of turns a second over 2,000 numbers
would run into the per-subscriber rate limit (60 turns a minute) and measure its notices.

``--server-cpus C`` caps every server process (the echo server's too) at C CPUs with a cgroup
CPU quota of its own (Linux, root: cgroup v1's ``cpu`` hierarchy or v2's ``cpu.max``). On a
2-CPU box the driver, simulator, Redis and PostgreSQL share the CPUs with the servers; uncapped,
a second server finds only what they leave idle and one vs two measures the box. Capped at the
same share each, one vs two asks whether a process on its own share adds turns or whether the
processes serialise on the shared Redis and PostgreSQL.

Redis memory per open USSD session: ``--ussd-sessions`` handsets dial ``*100#`` and leave the
session open; the ``MEMORY USAGE`` of every key of theirs (record, rate counter, MO dedup mark),
summed and divided by their number.

``--tls``: the simulator listens for SMPP over TLS only (a certificate made at start by trustme)
and the servers bind with ``smpps://…?ca=``, so every MO, reply and receipt crosses TLS; the
difference from a run without it is the cost of TLS per turn.

PostgreSQL runs go to a dedicated database ``idea24_bench`` (dropped and created per run);
Redis runs use ``--redis-url`` (default DB 15), which is flushed at the start of the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path and its name shadows the package.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SECRET = "bench-e2e-secret"
SHORT_CODE = "2424"
SCENARIOS = ("pakiet", "wlacz", "ussd")
PAIRS = {"sqlite-memory": ("sqlite", "memory"), "postgresql-redis": ("postgresql", "redis")}
#: The bench's own database; IDEA24_BENCH_DB names another, so two benches can run side by side
#: (each with its own --redis-url DB too) without dropping each other's.
BENCH_DB = os.environ.get("IDEA24_BENCH_DB", "idea24_bench")
TURN_TIMEOUT = 15.0
RUN_KEYS = (
    "scenario",
    "db",
    "store",
    "turns_per_s",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "cpu_s_per_1000",
    "rss_mb",
    "processes",
    "server_p50_ms",
    "server_p99_ms",
    "machine_busy_cpus",
    "server_turns_per_s",
)
#: Pairs whose every piece of state lives outside the server process, so N servers can share it.
SHARED_PAIRS = ("postgresql-redis",)

# -- numbers ---------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between ranks (numpy's default).

    ``values`` need not be sorted; an empty sequence gives NaN (no turn completed).
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True, slots=True)
class RunResult:
    """One scenario on one storage pair: the fields of a ``runs`` entry in ``--json``."""

    scenario: str
    db: str
    store: str
    turns_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    cpu_s_per_1000: float
    rss_mb: float
    processes: int = 1
    #: the servers' own turn time (``idea24_turn_seconds``, MO handed on → replies queued and
    #: state saved), as the upper bound of the histogram bucket holding p50 / p99: what the
    #: server did, without the simulator's and driver's share of the end-to-end latency
    server_p50_ms: float = math.nan
    server_p99_ms: float = math.nan
    #: CPUs of the machine busy on average during the scenario (servers, simulator, driver,
    #: Redis, PostgreSQL, anything else): near the CPU count, adding processes cannot help
    machine_busy_cpus: float = math.nan
    #: turns the servers handled (their ``idea24_turn_seconds`` count) per second of the whole
    #: scenario — warm-up and the wait for late replies included: offered more than they
    #: answer (open loop), what they did get through, late or not
    server_turns_per_s: float = math.nan


def summarise(
    scenario: str,
    db: str,
    store: str,
    latencies_s: Sequence[float],
    elapsed_s: float,
    cpu_s: float,
    rss_mb: float,
    processes: int = 1,
) -> RunResult:
    """Turn counts and times into a :class:`RunResult` (ms, turns/s, CPU s per 1,000 turns);
    ``cpu_s`` and ``rss_mb`` are already summed over the ``processes`` servers."""
    turns = len(latencies_s)
    ms = [v * 1000 for v in latencies_s]
    return RunResult(
        scenario,
        db,
        store,
        round(turns / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        round(percentile(ms, 50), 2),
        round(percentile(ms, 95), 2),
        round(percentile(ms, 99), 2),
        round(cpu_s * 1000 / turns, 3) if turns else math.nan,
        round(rss_mb, 1),
        processes,
    )


def report(ceiling_rate: float, runs: Sequence[RunResult], **extra: Any) -> dict[str, Any]:
    """The ``--json`` object: the ceiling, one entry per run, then any extra top-level facts."""
    return {
        "ceiling_turns_per_s": round(float(ceiling_rate), 1),
        "runs": [{k: _json_number(v) for k, v in asdict(r).items()} for r in runs],
        **extra,
    }


def _json_number(value: Any) -> Any:
    """JSON has no NaN or infinity: a figure that could not be measured (or lies past the last
    histogram bound) is ``null``."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def table(ceiling: float, runs: Sequence[RunResult]) -> str:
    head = f"{'scenario':8} {'db':10} {'store':6} {'turns/s':>9} {'p50 ms':>8} {'p95 ms':>8}"
    head += f" {'p99 ms':>8} {'CPU s/1k':>9} {'RSS MB':>7} {'x ceil':>7} {'procs':>5}"
    lines = [head]
    for r in runs:
        ratio = r.turns_per_s / ceiling if ceiling else math.nan
        lines.append(
            f"{r.scenario:8} {r.db:10} {r.store:6} {r.turns_per_s:9.0f} {r.p50_ms:8.1f}"
            f" {r.p95_ms:8.1f} {r.p99_ms:8.1f} {r.cpu_s_per_1000:9.3f} {r.rss_mb:7.1f}"
            f" {ratio:7.2f} {r.processes:5d}"
        )
    lines.append(f"echo ceiling (same SMS traffic, no dialog/backend): {ceiling:.0f} turns/s")
    return "\n".join(lines)


# -- the server process ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ProcessStats:
    """CPU seconds and peak RSS of one process, read from ``/proc`` (Linux)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._tick = os.sysconf("SC_CLK_TCK")

    def cpu_s(self) -> float:
        with open(f"/proc/{self.pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / self._tick  # utime + stime, all threads

    def peak_rss_mb(self) -> float:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return math.nan


class QuotaUnavailable(RuntimeError):
    """No cgroup this process may create and fill: ``--server-cpus`` cannot be honoured."""


class CpuQuota:
    """At most ``cpus`` CPUs for one process: a cgroup of its own with a CFS quota (Linux; root
    or a delegated cgroup tree). cgroup v1's ``cpu`` hierarchy (``cpu.cfs_quota_us``) when it is
    mounted, else v2's ``cpu.max``.

    Why: on a 2-CPU box the load driver, the simulator, Redis and PostgreSQL share the CPUs with
    the servers, so a second uncapped server only finds what they leave idle, and one vs two
    servers measures the box. Capping every server at the same share asks what a deployment
    asks — does a second process on its own share add turns, or do the processes serialise on
    Redis or PostgreSQL?"""

    #: short periods: a capped server waits at most (period - quota) for its next slice
    PERIOD_US = 10_000

    def __init__(self, cpus: float, *, root: Path | None = None, version: int | None = None):
        if not cpus > 0:
            raise ValueError(f"a CPU quota must be above 0, got {cpus}")
        self.cpus = cpus
        if root is None or version is None:
            root, version = self.find_root()
        self.root, self.version = root, version
        self.path: Path | None = None

    @staticmethod
    def find_root() -> tuple[Path, int]:
        v1 = Path("/sys/fs/cgroup/cpu")
        if (v1 / "cpu.cfs_quota_us").exists():
            return v1, 1
        v2 = Path("/sys/fs/cgroup")
        controllers = v2 / "cgroup.controllers"
        if controllers.exists() and "cpu" in controllers.read_text().split():
            return v2, 2
        raise QuotaUnavailable("no cgroup CPU controller under /sys/fs/cgroup (cgroup v1 cpu/v2)")

    def apply(self, pid: int) -> Path:
        """Move ``pid`` (every thread of it) into a new cgroup limited to ``cpus``."""
        quota_us = max(1000, round(self.cpus * self.PERIOD_US))  # the kernel's minimum: 1 ms
        path = self.root / f"idea24-bench-{pid}"
        try:
            path.mkdir()
            self.path = path
            if self.version == 1:
                (path / "cpu.cfs_period_us").write_text(f"{self.PERIOD_US}\n")
                (path / "cpu.cfs_quota_us").write_text(f"{quota_us}\n")
            else:
                control = self.root / "cgroup.subtree_control"
                if "cpu" not in control.read_text().split():
                    control.write_text("+cpu\n")
                (path / "cpu.max").write_text(f"{quota_us} {self.PERIOD_US}\n")
            (path / "cgroup.procs").write_text(f"{pid}\n")
        except OSError as exc:
            self.release()
            raise QuotaUnavailable(f"cannot cap process {pid} at {self.cpus} CPUs: {exc}") from exc
        return path

    def release(self) -> None:
        """Remove the cgroup (its process has exited; a cgroup holding none can go)."""
        path, self.path = self.path, None
        if path is not None:
            with contextlib.suppress(OSError):
                path.rmdir()


class ServerProcess:
    """``idea24 serve`` (or the echo server) as a subprocess, bound to the bench's simulator."""

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        log_path: Path,
        http_port: int | None = None,
        cpus: float | None = None,
    ) -> None:
        self.argv = argv
        self.env = env
        self.log_path = log_path
        #: the server's HTTP port (``/metrics`` is read around each scenario), None: no HTTP
        self.http_port = http_port
        #: at most this many CPUs for the process (``--server-cpus``), None: uncapped
        self.quota = CpuQuota(cpus) if cpus else None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def stats(self) -> ProcessStats:
        assert self.proc is not None
        return ProcessStats(self.proc.pid)

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log_path.open("wb") as log:
            return subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
            )

    async def start(self, sim: Any, wait: float = 120.0) -> None:
        """Spawn, and return once the simulator counts one more receiving bind than before and
        the HTTP port (if any) accepts connections: the server binds to the SMSC before its
        HTTP site listens, and the first ``/metrics`` read follows at once."""
        before = len(sim.smsc.receivers(None, SHORT_CODE))
        self.proc = self._spawn()
        if self.quota is not None:
            try:
                self.quota.apply(self.proc.pid)
            except QuotaUnavailable:
                await self.stop()
                raise
        deadline = time.monotonic() + wait
        while len(sim.smsc.receivers(None, SHORT_CODE)) <= before or not await self._listening():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                await self.stop()
                raise RuntimeError(f"server did not start ({' '.join(self.argv[:4])}):\n{tail}")
            await asyncio.sleep(0.05)

    async def _listening(self) -> bool:
        if self.http_port is None:
            return True
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", self.http_port)
        except OSError:
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    async def stop(self) -> None:
        try:
            await self._stop()
        finally:
            if self.quota is not None:
                self.quota.release()

    async def _stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        for _ in range(300):
            if proc.poll() is not None:
                return
            await asyncio.sleep(0.05)
        proc.kill()
        proc.wait()


class GroupStats:
    """CPU seconds and peak RSS summed over the server processes of one run."""

    def __init__(self, members: Sequence[ProcessStats]) -> None:
        self.members = list(members)

    def cpu_s(self) -> float:
        return sum(m.cpu_s() for m in self.members)

    def peak_rss_mb(self) -> float:
        return sum(m.peak_rss_mb() for m in self.members)


class ServerGroup:
    """N servers bound to the same simulator account; started one after another (each waits for
    its own bind, so start-up work such as schema checks never races), stopped together."""

    def __init__(self, servers: Sequence[ServerProcess]) -> None:
        if not servers:
            raise ValueError("a server group needs at least one server")
        self.servers = list(servers)

    @property
    def stats(self) -> GroupStats:
        return GroupStats([s.stats for s in self.servers])

    async def start(self, sim: Any) -> None:
        try:
            for server in self.servers:
                await server.start(sim)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        await asyncio.gather(*(s.stop() for s in self.servers))


def serve_argv(
    smsc_url: str, db_url: str, redis_url: str | None, http_port: int, profile: Path | None = None
) -> list[str]:
    """``idea24 serve`` against the bench's simulator; under pyinstrument when ``profile``."""
    script = Path(sys.executable).with_name("idea24")
    if profile is not None:
        argv = [sys.executable, "-m", "pyinstrument", "-r", "session"]
        argv += ["-o", str(profile), "-m", "gateway.cli"]
    elif script.exists():
        argv = [str(script)]
    else:
        argv = [sys.executable, "-m", "gateway.cli"]
    argv += ["serve", "--smsc", smsc_url, "--http", f"127.0.0.1:{http_port}"]
    argv += ["--database-url", db_url]
    if redis_url:
        argv += ["--redis-url", redis_url]
    return argv


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDEA24_")}
    env.update(
        IDEA24_SECRET_KEY=SECRET,
        IDEA24_API_KEY="bench-api-key",
        IDEA24_LOG_LEVEL=os.environ.get("IDEA24_BENCH_LOG_LEVEL", "WARNING"),
        PYTHONPATH=str(ROOT),
    )
    env.update(extra or {})
    return env


# -- replies at the handset ------------------------------------------------------------------------


class Replies:
    """Hands each MT SMS the simulator stores to whoever waits for that subscriber.

    One subscription to the simulator's event stream for the whole run (a waiter per message
    would fan every event out to every waiter), with no backlog bound: offered more than the
    server answers (open loop), this process falls thousands of events behind, and each cut-off
    made it re-read every waiting handset's history from the store — 41 % of this process's CPU
    at 8,000 offered turns/s, so it fell behind again. The store's end of stream (``None``)
    still serves the waiters from the store.
    """

    def __init__(self, store: Any) -> None:
        self._store = store
        self._waiting: dict[str, deque[tuple[float, asyncio.Future[Any]]]] = defaultdict(deque)
        self._task: asyncio.Task[None] | None = None

    def expect(self, msisdn: str, since: float) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[msisdn].append((since, future))
        return future

    def forget(self, msisdn: str, future: asyncio.Future[Any]) -> None:
        """Stop waiting (timeout, error): the waiter leaves the queue if it is still there."""
        queue = self._waiting.get(msisdn)
        if queue is None:
            return
        for entry in list(queue):
            if entry[1] is future:
                queue.remove(entry)
        if not queue:
            del self._waiting[msisdn]

    def _deliver(self, message: Any) -> None:
        queue = self._waiting.get(message.msisdn)
        while queue:
            _since, future = queue.popleft()
            if not future.done():
                future.set_result(message)
                break
        if queue is not None and not queue:
            del self._waiting[message.msisdn]

    async def _run(self) -> None:
        queue = self._store.subscribe(receipts=False, backlog=None)
        try:
            while True:
                message = await queue.get()
                if message is None:  # we lagged behind: resubscribe, then catch up from the store
                    self._store.unsubscribe(queue)
                    queue = self._store.subscribe(receipts=False, backlog=None)
                    self._catch_up()
                    continue
                if message.direction == "mt" and message.kind == "sms" and message.receipt is None:
                    self._deliver(message)
        finally:
            self._store.unsubscribe(queue)

    def _catch_up(self) -> None:
        for msisdn in list(self._waiting):
            for message in self._store.messages(msisdn):
                queue = self._waiting.get(msisdn)
                if not queue:
                    break
                if (
                    message.direction == "mt"
                    and message.kind == "sms"
                    and message.at >= queue[0][0]
                ):
                    self._deliver(message)

    def __enter__(self) -> Replies:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


class UnexpectedReply(AssertionError):
    """The server answered, but not what the scenario expects (counted as an error)."""


@dataclass(slots=True)
class Tally:
    """What one measured window collected."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    samples: list[str] = field(default_factory=list)

    def fail(self, what: str) -> None:
        self.errors += 1
        if len(self.samples) < 3:
            self.samples.append(what)


class Driver:
    """Runs turns against the simulator: SMS through ``inject_mo``, USSD through ``dial``."""

    def __init__(self, sim: Any, replies: Replies) -> None:
        self.sim = sim
        self.replies = replies
        self.active: dict[str, bool] = {}
        self._rounds: dict[str, int] = defaultdict(int)

    def keyword(self, msisdn: str, word: str) -> str:
        """``word`` in the next of its letter-case variants for this sender.

        A gateway process drops an SMS that repeats exactly the last one *it* handed on from
        that sender within its redelivery window (an SMSC redelivery looks like that). One
        process sees every MO, so alternating two spellings would do; with ``--processes N``
        the simulator spreads MO over N binds, so a process sees an arbitrary subset: the
        spelling must not come back for many rounds (commands are case-insensitive).
        """
        self._rounds[msisdn] += 1
        return case_variant(word, self._rounds[msisdn] - 1)

    async def sms(self, msisdn: str, text: str) -> tuple[float, str]:
        since = time.time()
        future = self.replies.expect(msisdn, since)
        try:
            await self.sim.smsc.inject_mo(msisdn, SHORT_CODE, text)
            async with asyncio.timeout(TURN_TIMEOUT):
                message = await future
        except BaseException:
            self.replies.forget(msisdn, future)
            raise
        return max(0.0, message.at - since), message.text

    async def ussd(self, msisdn: str, text: str) -> tuple[float, str]:
        started = time.perf_counter()
        reply = await self.sim.smsc.dial(msisdn, text, TURN_TIMEOUT)
        return time.perf_counter() - started, reply.text

    async def pakiet(self, msisdn: str, tally: Tally, record: Callable[[], bool]) -> None:
        latency, text = await self.sms(msisdn, self.keyword(msisdn, "PAKIET"))
        _expect(text.startswith("Pakiet"), text)
        if record():
            tally.latencies.append(latency)

    async def wlacz(self, msisdn: str, tally: Tally, record: Callable[[], bool]) -> None:
        on = not self.active.get(msisdn, False)
        verb = self.keyword(msisdn, "WLACZ" if on else "WYLACZ")
        latency, text = await self.sms(msisdn, f"{verb} NOCE")
        if record():
            tally.latencies.append(latency)
        if "TAK" not in text:  # already in that state (an earlier run): switch the other way
            self.active[msisdn] = on
            return
        latency, text = await self.sms(msisdn, f"{self.keyword(msisdn, 'TAK')} {msisdn[-6:]}")
        _expect("noce" in text.lower(), text)
        self.active[msisdn] = on
        if record():
            tally.latencies.append(latency)

    async def walk(self, msisdn: str, tally: Tally, record: Callable[[], bool]) -> None:
        for step, marker in (("*100#", "1 "), ("1", "konto"), ("1", "")):
            latency, text = await self.ussd(msisdn, step)
            _expect(marker.lower() in text.lower(), text)
            if record():
                tally.latencies.append(latency)


def case_variant(word: str, n: int) -> str:
    """The ``n``-th spelling of ``word``: bit ``i`` of ``n`` lowers its ``i``-th letter, so the
    first ``2 ** letters`` spellings are all different (``n = 0`` is ``word`` itself)."""
    letters = [i for i, c in enumerate(word) if c.isalpha()]
    if not letters:
        return word
    n %= 2 ** len(letters)
    chars = list(word)
    for bit, i in enumerate(letters):
        if n >> bit & 1:
            chars[i] = chars[i].lower()
    return "".join(chars)


def _expect(ok: bool, text: str) -> None:
    if not ok:
        raise UnexpectedReply(text[:120])


Scenario = Callable[[str, Tally, Callable[[], bool]], Awaitable[None]]


def slices(subscribers: Sequence[str], users: int) -> list[list[str]]:
    """Disjoint subscriber lists, one per virtual handset (round-robin), none empty."""
    users = max(1, min(users, len(subscribers)))
    return [list(subscribers[i::users]) for i in range(users)]


async def closed_loop(
    scenario: Scenario, subscribers: Sequence[str], users: int, warmup: float, seconds: float
) -> tuple[Tally, float]:
    """``users`` handsets, each one turn at a time; returns what the measured window saw."""
    tally = Tally()
    loop = asyncio.get_running_loop()
    start = loop.time() + warmup
    end = start + seconds

    def record() -> bool:
        return start <= loop.time() < end

    async def user(mine: list[str]) -> None:
        for msisdn in _cycle(mine):
            if loop.time() >= end:
                return
            began = record()  # a turn begun in the window and lost after it still counts
            try:
                await scenario(msisdn, tally, record)
            except UnexpectedReply as exc:
                if began or record():
                    tally.fail(f"unexpected reply: {exc}")
            except (TimeoutError, OSError, RuntimeError, ValueError) as exc:
                if began or record():
                    tally.fail(f"{type(exc).__name__}: {exc}")

    await asyncio.gather(*(user(m) for m in slices(subscribers, users)))
    return tally, seconds


async def open_loop(
    driver: Driver, subscribers: Sequence[str], rate: float, seconds: float, warmup: float
) -> tuple[Tally, float]:
    """``PAKIET`` turns started at a fixed offered ``rate`` whatever the server's pace."""
    tally = Tally()
    loop = asyncio.get_running_loop()
    start = loop.time() + warmup
    end = start + seconds
    tasks: set[asyncio.Task[None]] = set()
    order = _cycle(list(subscribers))

    async def one(msisdn: str, measured: bool) -> None:
        try:
            latency, text = await driver.sms(msisdn, driver.keyword(msisdn, "PAKIET"))
            _expect(text.startswith("Pakiet"), text)
            if measured:
                tally.latencies.append(latency)
        except (UnexpectedReply, TimeoutError, OSError, RuntimeError, ValueError) as exc:
            if measured:
                tally.fail(f"{type(exc).__name__}: {exc}")

    t0 = loop.time()
    sent = 0
    while True:
        now = loop.time()
        if now >= end:
            break
        due = int((now - t0) * rate) - sent
        for _ in range(due):
            task = loop.create_task(one(next(order), start <= now < end))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        sent += max(0, due)
        await asyncio.sleep(0.002)
    if tasks:
        await asyncio.wait(tasks, timeout=TURN_TIMEOUT + 5)
    return tally, seconds


def _cycle(items: list[str]) -> Iterator[str]:
    while True:
        yield from items


# -- storage ---------------------------------------------------------------------------------------


async def fresh_postgres(admin_url: str) -> str:
    """Drop and create ``idea24_bench`` next to ``admin_url``; returns its SQLAlchemy URL."""
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    finally:
        await conn.close()
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{BENCH_DB}"


async def flush_redis(url: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


async def seed_database(url: str, subscribers: int) -> float:
    from backend.manage import seed

    t0 = time.perf_counter()
    await seed(url, SECRET, demo=True, subscribers=subscribers)
    return time.perf_counter() - t0


# -- the run ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class Options:
    subscribers: int
    seconds: float
    warmup: float
    concurrency: int
    pairs: list[str]
    scenarios: list[str]
    window: int
    rate: float | None
    postgres: str
    redis_url: str
    ussd_sessions: int
    as_json: bool
    workdir: Path
    uvloop: bool = False
    profile: Path | None = None
    processes: int = 1
    rounds: int = 1
    #: CPUs each server process (and the echo server) may use, None: uncapped
    server_cpus: float | None = None
    #: SMPP over TLS between the simulator and every server
    tls: bool = False


def say(opts: Options, text: str) -> None:
    print(text, file=sys.stderr if opts.as_json else sys.stdout, flush=True)


def subscriber_list(n: int) -> list[str]:
    from backend.seed import SYNTHETIC_BASE

    numbers = [str(SYNTHETIC_BASE + i) for i in range(n)]
    random.Random(24).shuffle(numbers)
    return numbers


async def timed(
    server: ProcessStats | GroupStats, run: Awaitable[tuple[Tally, float]]
) -> tuple[Tally, float, float, float, float]:
    """``run``'s tally and measured seconds, with the CPU seconds the server and this process
    (simulator + driver) spent, scaled to the measured window's share of the wall time, and
    how many of the machine's CPUs were busy meanwhile (everything: Redis, PostgreSQL too)."""
    me = ProcessStats(os.getpid())
    machine0 = machine_jiffies()
    server0, me0, wall0 = server.cpu_s(), me.cpu_s(), time.perf_counter()
    tally, elapsed = await run
    share = min(1.0, elapsed / max(time.perf_counter() - wall0, 1e-9))
    busy = busy_cpus(machine0, machine_jiffies())
    return tally, elapsed, (server.cpu_s() - server0) * share, (me.cpu_s() - me0) * share, busy


def machine_jiffies() -> tuple[int, int]:
    """All CPUs' (total, idle + iowait) jiffies since boot, from ``/proc/stat``'s first line."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return sum(fields), fields[3] + (fields[4] if len(fields) > 4 else 0)


def busy_cpus(before: tuple[int, int], after: tuple[int, int], cpus: int | None = None) -> float:
    """How many CPUs were busy on average between two :func:`machine_jiffies` readings."""
    total, idle = after[0] - before[0], after[1] - before[1]
    if total <= 0:
        return math.nan
    return round((cpus or os.cpu_count() or 1) * (1 - idle / total), 2)


def describe(name: str, result: RunResult, tally: Tally, bench_cpu: float) -> str:
    turns = len(tally.latencies)
    own = f", simulator+driver {bench_cpu * 1000 / turns:.3f} CPU s/1k" if turns else ""
    note = f", {tally.errors} errors e.g. {tally.samples}" if tally.errors else ""
    server = ""
    if not math.isnan(result.server_p99_ms):
        server = (
            f", server's own turn p50/p99 ≤ {result.server_p50_ms:g}/≤ {result.server_p99_ms:g} ms"
        )
    if not math.isnan(result.machine_busy_cpus):
        server += f", machine {result.machine_busy_cpus:.2f} of {os.cpu_count()} CPUs busy"
    if not math.isnan(result.server_turns_per_s):
        server += f", servers handled {result.server_turns_per_s:.0f} turns/s over the whole run"
    return (
        f"{name}: {result.turns_per_s:.0f} turns/s, p50/p95/p99 {result.p50_ms}/{result.p95_ms}"
        f"/{result.p99_ms} ms, server {result.cpu_s_per_1000} CPU s/1k{own}{server}{note}"
    )


async def measure_ceiling(
    opts: Options, sim: Any, driver: Driver, smsc_url: str
) -> tuple[float, dict[str, Any]]:
    argv = [sys.executable, str(SCRIPT), "--echo-server", smsc_url]
    if not opts.uvloop:
        argv.append("--no-uvloop")
    server = ServerProcess(argv, server_env(), opts.workdir / "echo.log", cpus=opts.server_cpus)
    await server.start(sim)
    try:

        async def echo(msisdn: str, tally: Tally, record: Callable[[], bool]) -> None:
            sent = driver.keyword(msisdn, "PAKIET")
            latency, text = await driver.sms(msisdn, sent)
            _expect(text == sent, text)
            if record():
                tally.latencies.append(latency)

        stats = server.stats
        tally, elapsed, cpu, bench_cpu, _busy = await timed(
            stats,
            closed_loop(
                echo, subscriber_list(opts.subscribers), opts.concurrency, opts.warmup, opts.seconds
            ),
        )
        result = summarise("echo", "-", "-", tally.latencies, elapsed, cpu, stats.peak_rss_mb())
    finally:
        await server.stop()
    say(opts, describe("echo ceiling", result, tally, bench_cpu))
    detail = {k: _json_number(v) for k, v in asdict(result).items() if k not in ("db", "store")}
    return result.turns_per_s, detail


async def run_pair(
    opts: Options, sim: Any, driver: Driver, smsc_url: str, pair: str
) -> tuple[list[RunResult], dict[str, Any]]:
    """Seed the pair's database once, then measure its scenarios: once with ``--processes``
    servers, or with ``--rounds K`` K times alternating one server and ``--processes`` servers
    (one then N, N then one, ...) so a drift of the machine's speed falls on both alike."""
    db, store = PAIRS[pair]
    if db == "sqlite":
        db_url = f"sqlite+aiosqlite:///{opts.workdir / 'bench.db'}"
        with contextlib.suppress(FileNotFoundError):
            for suffix in ("", "-wal", "-shm"):
                (opts.workdir / f"bench.db{suffix}").unlink()
    else:
        db_url = await fresh_postgres(opts.postgres)
    redis_url = opts.redis_url if store == "redis" else None
    if redis_url:
        await flush_redis(redis_url)
    seeded = await seed_database(db_url, opts.subscribers)
    say(opts, f"{pair}: seeded {opts.subscribers} subscribers in {seeded:.1f} s")
    if opts.rounds == 1:
        return await measure_servers(opts, sim, driver, smsc_url, pair, db_url, redis_url)
    counts = [opts.processes] if opts.processes == 1 else [1, opts.processes]
    results: list[RunResult] = []
    extra: dict[str, Any] = {}
    for index in range(opts.rounds):
        for processes in counts if index % 2 == 0 else counts[::-1]:
            say(opts, f"{pair}: round {index + 1}/{opts.rounds}, {processes} server(s)")
            runs, more = await measure_servers(
                opts, sim, driver, smsc_url, pair, db_url, redis_url, processes, last=False
            )
            results += runs
            extra.update(more)
    if len(counts) > 1:
        extra["scaling"] = scaling(results, opts.processes)
        say(opts, describe_scaling(extra["scaling"]))
    return results, extra


async def measure_servers(
    opts: Options,
    sim: Any,
    driver: Driver,
    smsc_url: str,
    pair: str,
    db_url: str,
    redis_url: str | None,
    processes: int | None = None,
    *,
    last: bool = True,
) -> tuple[list[RunResult], dict[str, Any]]:
    """Start ``processes`` servers on the seeded database, run the scenarios, stop them.
    ``last``: also weigh the Redis memory of open USSD sessions (which leaves sessions open)."""
    db, store = PAIRS[pair]
    processes = processes or opts.processes
    names = [pair] if processes == 1 else [f"{pair}-{i}" for i in range(processes)]
    http_ports = [free_port() for _ in names]
    if opts.profile:
        opts.profile.mkdir(parents=True, exist_ok=True)
    server = ServerGroup(
        [
            ServerProcess(
                serve_argv(
                    smsc_url,
                    db_url,
                    redis_url,
                    port,
                    opts.profile / f"{name}.pyisession" if opts.profile else None,
                ),
                server_env(),
                opts.workdir / f"{name}.log",
                port,
                cpus=opts.server_cpus,
            )
            for name, port in zip(names, http_ports, strict=True)
        ]
    )
    await server.start(sim)
    if processes > 1:
        say(opts, f"{pair}: {processes} servers bound to the simulator")
    extra: dict[str, Any] = {}
    results = []
    try:
        stats = server.stats
        numbers = subscriber_list(opts.subscribers)
        scenarios: dict[str, Scenario] = {
            "pakiet": driver.pakiet,
            "wlacz": driver.wlacz,
            "ussd": driver.walk,
        }
        if opts.rate:
            todo: list[tuple[str, Any]] = [("pakiet", None)]
        else:
            todo = [(name, scenarios[name]) for name in opts.scenarios]
        for name, scenario in todo:
            if scenario is None:
                assert opts.rate is not None
                load = open_loop(driver, numbers, opts.rate, opts.seconds, opts.warmup)
            else:
                load = closed_loop(scenario, numbers, opts.concurrency, opts.warmup, opts.seconds)
            channel = "ussd" if name == "ussd" else "sms"
            buckets0 = await turn_buckets(http_ports, channel)
            began = time.perf_counter()
            tally, elapsed, cpu, bench_cpu, busy = await timed(stats, load)
            buckets1 = await turn_buckets(http_ports, channel)
            handled = bucket_count(buckets0, buckets1) / (time.perf_counter() - began)
            result = summarise(
                name,
                db,
                store,
                tally.latencies,
                elapsed,
                cpu,
                stats.peak_rss_mb(),
                processes,
            )
            result = dataclasses.replace(
                result,
                server_p50_ms=bucket_quantile(buckets0, buckets1, 0.50),
                server_p99_ms=bucket_quantile(buckets0, buckets1, 0.99),
                machine_busy_cpus=busy,
                server_turns_per_s=round(handled, 1),
            )
            results.append(result)
            say(opts, describe(f"{pair} {name}", result, tally, bench_cpu))
        if opts.profile:  # the servers' own view of the same turns, beside the profile
            for name, port in zip(names, http_ports, strict=True):
                await save_metrics(port, opts.profile / f"{name}.metrics.txt")
        if last and redis_url and opts.ussd_sessions and not opts.rate:
            extra["redis_bytes_per_ussd_session"] = await redis_per_session(opts, driver, redis_url)
    finally:
        await server.stop()
    return results, extra


def scaling(runs: Sequence[RunResult], processes: int) -> dict[str, Any]:
    """Per scenario, the turns/s of ``processes`` servers over one server, round by round (the
    runs alternate one and N; the k-th of each count form round k) and their median."""
    out: dict[str, Any] = {"processes": processes, "scenarios": {}}
    for scenario in dict.fromkeys(r.scenario for r in runs):
        one = [r.turns_per_s for r in runs if r.scenario == scenario and r.processes == 1]
        many = [r.turns_per_s for r in runs if r.scenario == scenario and r.processes == processes]
        ratios = [round(m / o, 3) if o else math.nan for o, m in zip(one, many, strict=True)]
        out["scenarios"][scenario] = {
            "one_turns_per_s": one,
            "many_turns_per_s": many,
            "ratios": [_json_number(r) for r in ratios],
            "median_ratio": _json_number(round(statistics.median(ratios), 3)) if ratios else None,
            "rounds_above_one": sum(1 for r in ratios if r > 1),
        }
    return out


def describe_scaling(summary: dict[str, Any]) -> str:
    lines = []
    n = summary["processes"]
    for scenario, s in summary["scenarios"].items():
        rates = zip(s["one_turns_per_s"], s["many_turns_per_s"], strict=True)
        pairs = ", ".join(f"{o:.0f}→{m:.0f}" for o, m in rates)
        lines.append(
            f"scaling {scenario}: 1 → {n} servers per round (turns/s) {pairs}; {n} above one in"
            f" {s['rounds_above_one']} of {len(s['ratios'])} rounds, median ×{s['median_ratio']}"
        )
    return "\n".join(lines)


_BUCKET = re.compile(r'^idea24_turn_seconds_bucket\{channel="(\w+)",le="([^"]+)"\} (\S+)$')


async def metrics_text(http_port: int) -> str:
    """A server's ``/metrics`` page."""
    import aiohttp

    async with (
        aiohttp.ClientSession() as client,
        client.get(f"http://127.0.0.1:{http_port}/metrics") as response,
    ):
        return await response.text()


async def turn_buckets(http_ports: Sequence[int], channel: str) -> dict[float, float]:
    """The servers' ``idea24_turn_seconds`` buckets of ``channel``: upper bound (s) → turns at
    or under it since start, summed over the servers."""
    counts: dict[float, float] = {}
    for port in http_ports:
        for line in (await metrics_text(port)).splitlines():
            found = _BUCKET.match(line)
            if found and found.group(1) == channel:
                bound = float(found.group(2))
                counts[bound] = counts.get(bound, 0.0) + float(found.group(3))
    return counts


def bucket_count(before: dict[float, float], after: dict[float, float]) -> float:
    """Turns counted between two readings of cumulative buckets (the ``+Inf`` bucket)."""
    return after.get(math.inf, 0.0) - before.get(math.inf, 0.0)


def bucket_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The upper bound (ms) of the bucket holding quantile ``q`` of the turns counted between
    two readings of cumulative buckets (``inf`` past the last finite bound; NaN: no turns)."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return math.nan
    wanted = q * counts[-1]
    for bound, count in zip(bounds, counts, strict=True):
        if count >= wanted:
            return bound * 1000
    return math.inf


async def save_metrics(http_port: int, path: Path) -> None:
    text = await metrics_text(http_port)
    await asyncio.to_thread(path.write_text, text)


async def redis_per_session(opts: Options, driver: Driver, redis_url: str) -> float:
    """Open ``--ussd-sessions`` USSD sessions (``*100#``, left open) and weigh their keys.

    The numbers are outside the seeded range (the root menu reads no subscriber row), so every
    key carrying them in its hash tag belongs to these sessions: the record, the rate counter,
    the MO dedup mark. Their ``MEMORY USAGE`` summed, per session (Redis's own overhead per
    key included; other databases on the server do not disturb it).
    """
    import redis.asyncio as aioredis

    from backend.seed import SYNTHETIC_BASE

    count = min(opts.ussd_sessions, opts.subscribers)
    first = SYNTHETIC_BASE + 5_000_000
    numbers = [str(first + i) for i in range(count)]
    sem = asyncio.Semaphore(opts.concurrency)

    async def dial(msisdn: str) -> None:
        async with sem:
            await driver.ussd(msisdn, "*100#")

    await asyncio.gather(*(dial(n) for n in numbers))
    client = aioredis.from_url(redis_url)
    try:
        found = [k async for k in client.scan_iter(match=f"*{{{str(first)[:5]}*", count=1000)]
        pipe = client.pipeline(transaction=False)
        for key in found:
            pipe.memory_usage(key)
        sizes = await pipe.execute()
    finally:
        await client.aclose()
    per = sum(int(size or 0) for size in sizes) / count
    say(opts, f"redis: {per:.0f} bytes per open USSD session ({len(found) / count:.1f} keys each)")
    return round(per, 1)


async def run(opts: Options) -> tuple[float, list[RunResult], dict[str, Any]]:
    from simulator.controller import SimulatorController

    tls, ca = None, ""
    if opts.tls:
        from gateway.tls import server_context

        ca, cert, key = certificates(opts.workdir)
        tls = server_context(cert, key)
    async with SimulatorController(window=max(256, opts.window * 4), tls=tls, tls_only=True) as sim:
        host, port = sim.smpp_address
        smsc_url = f"smpp://idea24:idea24@{host}:{port}?window={opts.window}"
        if opts.tls:
            smsc_url = f"smpps://idea24:idea24@{host}:{port}?window={opts.window}&ca={ca}"
        with Replies(sim.smsc.store) as replies:
            driver = Driver(sim, replies)
            ceiling, ceiling_run = await measure_ceiling(opts, sim, driver, smsc_url)
            runs: list[RunResult] = []
            extra: dict[str, Any] = {"ceiling": ceiling_run}
            for pair in opts.pairs:
                results, more = await run_pair(opts, sim, driver, smsc_url, pair)
                runs += results
                extra.update(more)
    if opts.rate:
        extra["offered_turns_per_s"] = opts.rate
    extra["machine"] = {"cpus": os.cpu_count(), "loadavg_at_end": list(os.getloadavg())}
    if opts.server_cpus:
        extra["server_cpus"] = opts.server_cpus
    extra["smpp_link"] = "tls" if opts.tls else "clear text"
    return ceiling, runs, extra


def certificates(directory: Path) -> tuple[str, str, str]:
    """A CA and a certificate for 127.0.0.1 it signed (trustme, a dev dependency): the
    (ca, cert, key) files."""
    import trustme

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    paths = [str(directory / name) for name in ("ca.pem", "cert.pem", "key.pem")]
    ca.cert_pem.write_to_path(paths[0])
    leaf.cert_chain_pems[0].write_to_path(paths[1])
    leaf.private_key_pem.write_to_path(paths[2])
    return paths[0], paths[1], paths[2]


# -- the echo server (ceiling) ---------------------------------------------------------------------


async def echo_server(smsc_url: str) -> None:
    """A ``BindPool`` whose sink puts each message's text back: the SMPP path without a dialog."""
    from gateway.binds import BindPool
    from gateway.outbox.base import MemoryOutbox, reply_meta
    from gateway.settings import SmscProfile
    from gateway.sms.events import InboundEvent, InboundMessage

    outbox = MemoryOutbox()

    async def sink(event: InboundEvent) -> None:
        if isinstance(event, InboundMessage):
            await outbox.put(event.msisdn, event.text, reply_meta(event))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    pool = BindPool([SmscProfile.from_url(smsc_url)], outbox, sink)
    async with pool:
        await stop.wait()


# -- command line ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/e2e.py",
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="every pair and scenario in < 5 min")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--subscribers", type=int, default=None, help="synthetic subscribers")
    parser.add_argument("--seconds", type=float, default=None, help="measured time per scenario")
    parser.add_argument("--warmup", type=float, default=None, help="unmeasured start (seconds)")
    parser.add_argument("--concurrency", type=int, default=100, help="virtual handsets")
    parser.add_argument(
        "--pairs",
        default=None,
        help=f"db-store pairs, comma separated (default: {','.join(PAIRS)}; with --processes > 1:"
        f" {','.join(SHARED_PAIRS)})",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        metavar="N",
        help="idea24 serve processes sharing the simulator account, database and Redis (default 1;"
        " N > 1 needs a pair whose state is shared: postgresql-redis)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        metavar="K",
        help="measure K times on the same seeded database; with --processes N > 1 each round runs"
        " one server and N servers (alternating which goes first) and the scaling N/1 is printed",
    )
    parser.add_argument(
        "--server-cpus",
        type=float,
        default=None,
        metavar="C",
        help="cap every server process (the echo server's too) at C CPUs with a cgroup CPU quota"
        " (Linux, root): one vs N servers then asks whether a second process on its own share"
        " adds turns, not whether this box has CPU left over",
    )
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--window", type=int, default=64, help="SMPP window of the bind")
    parser.add_argument("--rate", type=float, help="open loop: offered PAKIET turns/s")
    parser.add_argument("--duration", type=float, help="open loop: seconds (as --seconds)")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15", help="flushed!")
    parser.add_argument("--ussd-sessions", type=int, default=1000)
    parser.add_argument(
        "--no-uvloop",
        dest="uvloop",
        action="store_false",
        help="run the simulator, driver and echo server on asyncio's loop (default: uvloop when"
        " installed, as idea24 serve does)",
    )
    parser.add_argument(
        "--profile", metavar="DIR", help="run each server under pyinstrument, sessions saved in DIR"
    )
    parser.add_argument(
        "--tls", action="store_true", help="SMPP over TLS between the simulator and the servers"
    )
    parser.add_argument("--echo-server", metavar="SMSC_URL", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


#: Subscribers seeded when several processes or rounds drive thousands of turns a second for
#: minutes: the per-subscriber rate limit (60 turns a minute, ``fsm.runtime``) must not answer
#: "too many messages" to a load no subscriber would send.
MANY_SUBSCRIBERS = 20_000


def default_subscribers(args: argparse.Namespace) -> int:
    if args.rounds > 1 or args.processes > 1:
        return MANY_SUBSCRIBERS
    return 2000 if args.quick else 5000


def options(args: argparse.Namespace, workdir: Path) -> Options:
    if args.processes < 1:
        raise SystemExit(f"--processes: must be at least 1, got {args.processes}")
    if args.rounds < 1:
        raise SystemExit(f"--rounds: must be at least 1, got {args.rounds}")
    if args.server_cpus is not None and not args.server_cpus > 0:
        raise SystemExit(f"--server-cpus: must be above 0, got {args.server_cpus}")
    if args.pairs is None:
        pairs = list(PAIRS) if args.processes == 1 else list(SHARED_PAIRS)
    else:
        pairs = [p.strip() for p in args.pairs.split(",") if p.strip()]
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    for p in pairs:
        if p not in PAIRS:
            raise SystemExit(f"--pairs: unknown pair {p!r}; choose from {', '.join(PAIRS)}")
        if args.processes > 1 and p not in SHARED_PAIRS:
            raise SystemExit(
                f"--processes {args.processes}: pair {p!r} keeps state inside each process (SQLite"
                " file locking, in-memory dialog sessions), so several servers would not share it;"
                f" use --pairs {','.join(SHARED_PAIRS)}"
            )
    for s in scenarios:
        if s not in SCENARIOS:
            raise SystemExit(f"--scenarios: unknown {s!r}; choose from {', '.join(SCENARIOS)}")
    seconds = args.duration or args.seconds or (5.0 if args.quick else 15.0)
    return Options(
        subscribers=args.subscribers or default_subscribers(args),
        seconds=seconds,
        warmup=args.warmup if args.warmup is not None else (1.5 if args.quick else 3.0),
        concurrency=args.concurrency,
        pairs=pairs,
        scenarios=scenarios,
        window=args.window,
        rate=args.rate,
        postgres=args.postgres,
        redis_url=args.redis_url,
        ussd_sessions=args.ussd_sessions,
        as_json=args.json,
        workdir=workdir,
        uvloop=args.uvloop,
        profile=Path(args.profile).resolve() if args.profile else None,
        processes=args.processes,
        rounds=args.rounds,
        server_cpus=args.server_cpus,
        tls=args.tls,
    )


def event_loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's loop when wanted and installed (``idea24 serve`` uses it then too)."""
    if not use_uvloop:
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.echo_server:
        with asyncio.Runner(loop_factory=event_loop_factory(args.uvloop)) as runner:
            runner.run(echo_server(args.echo_server))
        return 0
    with tempfile.TemporaryDirectory(prefix="idea24-e2e-") as tmp:
        opts = options(args, Path(tmp))
        with asyncio.Runner(loop_factory=event_loop_factory(args.uvloop)) as runner:
            try:
                ceiling, runs, extra = runner.run(run(opts))
            except QuotaUnavailable as exc:  # not root, no cgroup CPU controller
                raise SystemExit(f"--server-cpus: {exc}") from exc
    if args.json:
        print(json.dumps(report(ceiling, runs, **extra)))
    else:
        print(table(ceiling, runs))
        if "redis_bytes_per_ussd_session" in extra:
            print(f"Redis per open USSD session: {extra['redis_bytes_per_ussd_session']:.0f} B")
        if "scaling" in extra:
            print(describe_scaling(extra["scaling"]))
        if opts.server_cpus:
            print(f"every server process capped at {opts.server_cpus:g} CPUs (--server-cpus)")
        if opts.tls:
            print("SMPP link over TLS (--tls): simulator ↔ every server, echo ceiling included")
    return 0


if __name__ == "__main__":
    sys.exit(main())
