"""``idea24 serve --workers N``: how many, which binds each opens, what is refused."""

from __future__ import annotations

import os

import pytest

from backend.errors import ConfigError
from gateway.cli import main
from gateway.settings import Settings, SmscProfile
from gateway.workers import assign_binds, check_workers, worker_count


def bind(system_id: str = "a", **options: object) -> SmscProfile:
    return SmscProfile(system_id, "pw", "smsc.example", 2775, **options)  # type: ignore[arg-type]


def test_auto_is_the_cpus_this_process_may_use() -> None:
    assert worker_count("auto") == len(os.sched_getaffinity(0))
    assert worker_count(None) == 1
    assert worker_count("3") == 3
    for bad in ("0", "-1", "two", ""):
        with pytest.raises(ConfigError, match="--workers: expected"):
            worker_count(bad)


def test_binds_are_dealt_out_over_the_workers() -> None:
    a, b, c = bind("a"), bind("b"), bind("c")
    assert assign_binds([a, b, c], 2) == [(a, c), (b,)]
    assert assign_binds([a], 3) == [(a,), (), ()]
    assert assign_binds([a, b], 1) == [(a, b)]


def test_binds_per_worker_open_one_in_every_worker() -> None:
    each, spread = bind("each", binds_per_worker=True), bind("spread")
    assert assign_binds([each, spread], 2) == [(each, spread), (each,)]


def test_more_binds_than_the_account_allows_are_refused() -> None:
    each = bind("each", binds_per_worker=True, max_binds=2)
    assert len(assign_binds([each], 2)) == 2
    with pytest.raises(ConfigError, match=r"each@smsc.example:2775: 3 worker\(s\) would open 3"):
        assign_binds([each], 3)
    capped = bind("a", max_binds=1)
    with pytest.raises(ConfigError, match="max_binds"):
        assign_binds([capped, capped], 2)


def test_smsc_url_carries_the_worker_options() -> None:
    p = SmscProfile.from_url("smpp://id:pw@h:2775?binds_per_worker=1&max_binds=4")
    assert p.binds_per_worker and p.max_binds == 4


def test_many_workers_need_redis_and_a_real_smsc() -> None:
    smsc = (bind(),)
    with pytest.raises(ConfigError, match="set IDEA24_REDIS_URL"):
        check_workers(Settings(smsc=smsc), 2)
    with pytest.raises(ConfigError, match="--smsc or IDEA24_SMSC"):
        check_workers(Settings(redis_url="redis://127.0.0.1:1/0"), 2)
    check_workers(Settings(), 1)  # one process: the embedded defaults
    check_workers(Settings(smsc=smsc, redis_url="redis://127.0.0.1:1/0"), 2)


def test_the_command_refuses_workers_on_the_memory_store_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IDEA24_REDIS_URL", raising=False)
    status = main(["serve", "--workers", "2", "--smsc", "smpp://id:pw@127.0.0.1:1"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "IDEA24_REDIS_URL" in err, err
