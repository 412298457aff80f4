"""bench/e2e.py: the command line answers --help, and its numbers and JSON are right (no timing)."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "e2e.py"


@pytest.fixture(scope="module")
def e2e() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("bench_e2e", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_e2e"] = module  # dataclasses look their module up while decorating
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("bench_e2e", None)


def test_help_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    for flag in ("--quick", "--json", "--rate", "--duration", "--pairs", "--scenarios"):
        assert flag in done.stdout


def test_percentile_interpolates_like_numpy(e2e: ModuleType) -> None:
    values = [15.0, 20.0, 35.0, 40.0, 50.0]
    assert e2e.percentile(values, 0) == 15.0
    assert e2e.percentile(values, 100) == 50.0
    assert e2e.percentile(values, 50) == 35.0
    assert e2e.percentile(values, 40) == pytest.approx(29.0)  # rank 1.6: 20 + 0.6 * 15
    assert e2e.percentile(list(reversed(values)), 90) == pytest.approx(46.0)
    assert e2e.percentile([7.0], 99) == 7.0
    assert math.isnan(e2e.percentile([], 50))
    with pytest.raises(ValueError):
        e2e.percentile(values, 101)


def test_percentile_of_a_hundred(e2e: ModuleType) -> None:
    values = [float(i) for i in range(1, 101)]
    assert e2e.percentile(values, 99) == pytest.approx(99.01)
    assert e2e.percentile(values, 95) == pytest.approx(95.05)


def test_summarise_and_report_shape(e2e: ModuleType) -> None:
    latencies = [0.001 * i for i in range(1, 201)]  # 1..200 ms
    run = e2e.summarise("pakiet", "sqlite", "memory", latencies, 2.0, 0.5, 80.04)
    assert run.turns_per_s == 100.0
    assert run.p50_ms == pytest.approx(100.5)
    assert run.p99_ms == pytest.approx(198.01)
    assert run.cpu_s_per_1000 == 2.5  # 0.5 s for 200 turns
    empty = e2e.summarise("ussd", "postgresql", "redis", [], 2.0, 0.1, 90.0)
    out = json.loads(
        json.dumps(
            e2e.report(
                1234.56, [run, empty], redis_bytes_per_ussd_session=812.0, ceiling={"p50_ms": 1}
            )
        )
    )
    assert out["ceiling_turns_per_s"] == 1234.6
    assert list(out["runs"][0]) == list(e2e.RUN_KEYS)
    assert out["runs"][0]["scenario"] == "pakiet" and out["runs"][0]["db"] == "sqlite"
    assert out["runs"][1]["p50_ms"] is None and out["runs"][1]["turns_per_s"] == 0.0
    assert out["redis_bytes_per_ussd_session"] == 812.0
    assert "x ceil" in e2e.table(1234.56, [run])


def test_slices_are_disjoint_and_cover_everyone(e2e: ModuleType) -> None:
    numbers = [str(48700000000 + i) for i in range(10)]
    parts = e2e.slices(numbers, 3)
    assert sorted(n for part in parts for n in part) == sorted(numbers)
    assert len(parts) == 3 and all(parts)
    assert len(e2e.slices(numbers, 50)) == 10, "never more handsets than subscribers"


class _FakeStore:
    """The simulator store's subscription API, fed by hand."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.kept: list[Any] = []

    def subscribe(self, *, receipts: bool = True, backlog: int | None = 1000) -> asyncio.Queue[Any]:
        assert not receipts, "the bench waits for new messages only"
        assert backlog is None, "never cut off: catching up from the store costs more"
        return self.queue

    def unsubscribe(self, queue: asyncio.Queue[Any]) -> None:
        pass

    def messages(self, msisdn: str) -> list[Any]:
        return [m for m in self.kept if m.msisdn == msisdn]


def _message(msisdn: str, direction: str = "mt", receipt: str | None = None) -> Any:
    return SimpleNamespace(
        msisdn=msisdn, direction=direction, kind="sms", receipt=receipt, at=100.0, text="ok"
    )


async def test_replies_reach_the_waiter_of_their_number(e2e: ModuleType) -> None:
    store = _FakeStore()
    with e2e.Replies(store) as replies:
        first = replies.expect("48700000001", 99.0)
        second = replies.expect("48700000002", 99.0)
        gone = replies.expect("48700000003", 99.0)
        replies.forget("48700000003", gone)
        for m in (
            _message("48700000001", direction="mo"),  # what the handset sent: not a reply
            _message("48700000002", receipt="DELIVRD"),  # a receipt update: not a new reply
            _message("48700000002"),
            _message("48700000003"),  # nobody waits any more
        ):
            store.queue.put_nowait(m)
        assert (await asyncio.wait_for(second, 1)).msisdn == "48700000002"
        assert not first.done() and not gone.done()
        store.kept.append(_message("48700000001"))
        store.queue.put_nowait(None)  # cut off for lagging: caught up from the store
        assert (await asyncio.wait_for(first, 1)).msisdn == "48700000001"


def test_processes_defaults_to_one_and_reaches_every_run(e2e: ModuleType, tmp_path: Path) -> None:
    opts = e2e.options(e2e.parse_args(["--quick"]), tmp_path)
    assert opts.processes == 1
    assert opts.pairs == list(e2e.PAIRS), "one process: every pair, as before"
    run = e2e.summarise("pakiet", "postgresql", "redis", [0.01], 1.0, 0.001, 90.0, 2)
    entry = e2e.report(1000.0, [run])["runs"][0]
    assert entry["processes"] == 2 and list(entry) == list(e2e.RUN_KEYS)
    assert e2e.summarise("ussd", "sqlite", "memory", [0.01], 1.0, 0.001, 90.0).processes == 1


def test_processes_runs_only_pairs_that_share_their_state(e2e: ModuleType, tmp_path: Path) -> None:
    opts = e2e.options(e2e.parse_args(["--processes", "2"]), tmp_path)
    assert opts.processes == 2
    assert opts.pairs == ["postgresql-redis"], "default pairs narrow to the shared one"
    explicit = e2e.parse_args(["--processes", "3", "--pairs", "postgresql-redis"])
    assert e2e.options(explicit, tmp_path).pairs == ["postgresql-redis"]
    with pytest.raises(SystemExit, match=r"sqlite-memory.*--pairs postgresql-redis"):
        e2e.options(e2e.parse_args(["--processes", "2", "--pairs", "sqlite-memory"]), tmp_path)
    with pytest.raises(SystemExit, match="at least 1"):
        e2e.options(e2e.parse_args(["--processes", "0"]), tmp_path)
    with pytest.raises(SystemExit):  # argparse: not a number
        e2e.parse_args(["--processes", "two"])


class _FakeStats:
    def __init__(self, cpu: float, rss: float) -> None:
        self.cpu, self.rss = cpu, rss

    def cpu_s(self) -> float:
        return self.cpu

    def peak_rss_mb(self) -> float:
        return self.rss


def test_group_stats_sum_over_processes(e2e: ModuleType) -> None:
    stats = e2e.GroupStats([_FakeStats(1.5, 90.0), _FakeStats(2.0, 95.0)])
    assert stats.cpu_s() == 3.5
    assert stats.peak_rss_mb() == 185.0
    with pytest.raises(ValueError):
        e2e.ServerGroup([])


def test_case_variants_do_not_repeat_for_many_rounds(e2e: ModuleType) -> None:
    spellings = [e2e.case_variant("PAKIET", n) for n in range(64)]
    assert spellings[0] == "PAKIET"
    assert len(set(spellings)) == 64 and {s.upper() for s in spellings} == {"PAKIET"}
    assert e2e.case_variant("PAKIET", 64) == "PAKIET", "then the cycle starts again"
    assert e2e.case_variant("TAK", 5) == "tAk"
    assert e2e.case_variant("123", 7) == "123"
    driver = e2e.Driver(SimpleNamespace(), SimpleNamespace())
    sent = [driver.keyword("48700000001", "PAKIET") for _ in range(10)]
    assert len(set(sent)) == 10, "a sender's consecutive keywords all differ"
    assert driver.keyword("48700000002", "PAKIET") == "PAKIET", "counted per sender"


def test_bucket_quantile_reads_the_servers_histogram_between_two_readings(
    e2e: ModuleType,
) -> None:
    """Cumulative buckets (bound → turns at or under it) read before and after a run: the
    quantile's bucket bound in ms; past the last finite bound ``inf`` (null in JSON)."""
    before = {0.001: 10.0, 0.005: 10.0, 0.05: 10.0, math.inf: 10.0}
    after = {0.001: 60.0, 0.005: 100.0, 0.05: 109.0, math.inf: 110.0}  # 100 turns in between
    assert e2e.bucket_quantile(before, after, 0.5) == 1.0
    assert e2e.bucket_quantile(before, after, 0.9) == 5.0
    assert e2e.bucket_quantile(before, after, 0.99) == 50.0
    assert e2e.bucket_quantile(before, after, 1.0) == math.inf
    assert math.isnan(e2e.bucket_quantile(after, after, 0.5)), "no turns: not measured"
    assert e2e.bucket_count(before, after) == 100.0  # what the servers handled, late or not
    assert e2e.bucket_count({}, after) == 110.0
    run = e2e.summarise("pakiet", "sqlite", "memory", [0.01], 1.0, 0.001, 90.0)
    entry = e2e.report(1000.0, [dataclasses.replace(run, server_p99_ms=math.inf)])["runs"][0]
    assert entry["server_p99_ms"] is None and entry["server_p50_ms"] is None
    assert entry["server_turns_per_s"] is None, "not measured: null"
    said = e2e.describe("x", dataclasses.replace(run, server_turns_per_s=4100.4), e2e.Tally(), 0)
    assert "servers handled 4100 turns/s over the whole run" in said


def test_rounds_default_to_one_and_must_be_positive(e2e: ModuleType, tmp_path: Path) -> None:
    assert e2e.options(e2e.parse_args([]), tmp_path).rounds == 1
    opts = e2e.options(e2e.parse_args(["--processes", "2", "--rounds", "5"]), tmp_path)
    assert (opts.processes, opts.rounds) == (2, 5)
    with pytest.raises(SystemExit, match="at least 1"):
        e2e.options(e2e.parse_args(["--rounds", "0"]), tmp_path)


def test_scaling_pairs_each_round_of_one_with_the_same_round_of_n(e2e: ModuleType) -> None:
    def run(scenario: str, rate: float, processes: int) -> Any:
        return e2e.summarise(
            scenario, "postgresql", "redis", [0.01] * int(rate), 1.0, 0.1, 90.0, processes
        )

    # as run_pair orders them: round 1 one then two, round 2 two then one, round 3 one then two
    runs = [
        run("pakiet", 2000, 1),
        run("pakiet", 2400, 2),
        run("pakiet", 2100, 2),
        run("pakiet", 2200, 1),
        run("pakiet", 1800, 1),
        run("pakiet", 2700, 2),
    ]
    summary = e2e.scaling(runs, 2)
    pakiet = summary["scenarios"]["pakiet"]
    assert pakiet["one_turns_per_s"] == [2000, 2200, 1800]
    assert pakiet["many_turns_per_s"] == [2400, 2100, 2700]
    assert pakiet["ratios"] == [1.2, round(2100 / 2200, 3), 1.5]
    assert pakiet["median_ratio"] == 1.2 and pakiet["rounds_above_one"] == 2
    json.dumps(summary, allow_nan=False)  # fit for --json
    text = e2e.describe_scaling(summary)
    assert "2000→2400, 2200→2100, 1800→2700" in text and "2 of 3 rounds" in text
    assert "×1.2" in text


def test_busy_cpus_from_two_readings_of_proc_stat(e2e: ModuleType) -> None:
    # 400 jiffies passed on 2 CPUs, 100 of them idle: 1.5 CPUs busy on average
    assert e2e.busy_cpus((1000, 500), (1400, 600), cpus=2) == 1.5
    assert math.isnan(e2e.busy_cpus((1000, 500), (1000, 500), cpus=2))  # no time passed
    total, idle = e2e.machine_jiffies()
    assert total >= idle >= 0
    later = e2e.machine_jiffies()
    assert later[0] >= total and later[1] >= idle  # counters since boot only grow
    assert "machine_busy_cpus" in e2e.RUN_KEYS


def test_rounds_and_processes_seed_enough_subscribers_for_the_rate_limit(
    e2e: ModuleType, tmp_path: Path
) -> None:
    def subscribers(*argv: str) -> int:
        return int(e2e.options(e2e.parse_args(list(argv)), tmp_path).subscribers)

    assert subscribers("--quick") == 2000 and subscribers() == 5000
    assert subscribers("--quick", "--rounds", "3") == e2e.MANY_SUBSCRIBERS
    assert subscribers("--quick", "--processes", "2") == e2e.MANY_SUBSCRIBERS
    assert subscribers("--quick", "--processes", "2", "--subscribers", "300") == 300


class _BoundSim:
    """A simulator stand-in whose account shows one more receiving bind after the spawn."""

    def __init__(self) -> None:
        self.binds: list[object] = []
        self.smsc = self

    def receivers(self, _system_id: object, _short_code: object) -> list[object]:
        return self.binds


def test_server_start_waits_for_the_http_port_after_the_bind(
    e2e: ModuleType, tmp_path: Path
) -> None:
    async def scenario() -> None:
        sim = _BoundSim()
        port = e2e.free_port()
        argv = [sys.executable, "-c", "import time; time.sleep(30)"]
        server = e2e.ServerProcess(argv, {}, tmp_path / "server.log", port)
        server._spawn_real = server._spawn

        def spawn() -> Any:
            sim.binds.append(object())  # bound at once, HTTP not yet listening
            return server._spawn_real()

        server._spawn = spawn
        started = asyncio.create_task(server.start(sim))
        await asyncio.sleep(0.3)
        assert not started.done(), "bound, but /metrics would be refused"
        site = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
        try:
            await asyncio.wait_for(started, 5)
        finally:
            site.close()
            await server.stop()

    asyncio.run(scenario())


@pytest.mark.parametrize("version", [1, 2])
def test_cpu_quota_writes_the_cgroup_files_of_its_version(
    e2e: ModuleType, tmp_path: Path, version: int
) -> None:
    """0.5 CPUs = half of each 10 ms period, in v1's two files or v2's one; the pid goes into
    ``cgroup.procs`` (every thread moves); release removes the cgroup again."""
    if version == 2:
        (tmp_path / "cgroup.subtree_control").write_text("memory\n")
    quota = e2e.CpuQuota(0.5, root=tmp_path, version=version)
    path = quota.apply(4242)
    assert path == tmp_path / "idea24-bench-4242"
    if version == 1:
        assert (path / "cpu.cfs_period_us").read_text() == "10000\n"
        assert (path / "cpu.cfs_quota_us").read_text() == "5000\n"
    else:
        assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpu\n"
        assert (path / "cpu.max").read_text() == "5000 10000\n"
    assert (path / "cgroup.procs").read_text() == "4242\n"
    for leftover in path.iterdir():  # a real cgroup's files vanish with it
        leftover.unlink()
    quota.release()
    assert not path.exists()


def test_cpu_quota_that_cannot_be_set_says_why(e2e: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="above 0"):
        e2e.CpuQuota(0, root=tmp_path, version=1)
    quota = e2e.CpuQuota(0.5, root=tmp_path / "missing", version=1)
    with pytest.raises(e2e.QuotaUnavailable, match=r"cannot cap process 7 at 0\.5 CPUs"):
        quota.apply(7)
    with pytest.raises(SystemExit, match="--server-cpus: must be above 0"):
        e2e.options(e2e.parse_args(["--server-cpus", "0"]), tmp_path)
    assert e2e.options(e2e.parse_args(["--server-cpus", "0.5"]), tmp_path).server_cpus == 0.5


def test_cpu_quota_caps_a_real_process(e2e: ModuleType) -> None:
    """The real cgroup: a busy child capped at 0.2 CPUs gets about that much CPU."""
    try:
        root, _version = e2e.CpuQuota.find_root()
        probe = root / f"idea24-bench-probe-{os.getpid()}"
        probe.mkdir()
        probe.rmdir()
    except (OSError, e2e.QuotaUnavailable) as exc:
        pytest.skip(f"no writable cgroup CPU controller here ({exc}); bench-only feature")
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    quota = e2e.CpuQuota(0.2)
    try:
        path = quota.apply(child.pid)
        assert path.name in Path(f"/proc/{child.pid}/cgroup").read_text()
        stats = e2e.ProcessStats(child.pid)
        before, wall = stats.cpu_s(), time.monotonic()
        time.sleep(1.0)
        used = (stats.cpu_s() - before) / (time.monotonic() - wall)
        assert used < 0.45, f"capped at 0.2 CPUs, used {used:.2f}"
    finally:
        child.kill()
        child.wait()
        quota.release()
    assert not path.exists()


def test_server_cpus_without_a_cgroup_controller_ends_with_a_clear_message(
    e2e: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    def none_here() -> tuple[Path, int]:
        raise e2e.QuotaUnavailable("no cgroup CPU controller under /sys/fs/cgroup")

    monkeypatch.setattr(e2e.CpuQuota, "find_root", staticmethod(none_here))
    argv = ["--quick", "--server-cpus", "0.5", "--pairs", "sqlite-memory", "--scenarios", "pakiet"]
    with pytest.raises(SystemExit, match="--server-cpus: no cgroup CPU controller"):
        e2e.main(argv)
