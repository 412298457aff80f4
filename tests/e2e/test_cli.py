"""The ``idea24`` command as a newcomer meets it: help, version, clear errors, db tasks."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.e2e.serve import idea24_command


def run(
    *args: str, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*idea24_command(), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd
    )


def test_version_and_help() -> None:
    assert run("--version").stdout.startswith("idea24 ")
    out = run("--help").stdout
    for command in ("serve", "simulator", "phone", "db", "check"):
        assert command in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["serve", "--smsc", "http://nope"], "smpp://ID:PASSWORD@HOST:PORT"),
        (["serve", "--http", "8024"], "HOST:PORT"),
        (["serve", "--database-url", "mysql://x/y"], "IDEA24_DATABASE_URL"),
        (["serve", "--config", "/nonexistent.toml"], "does not exist"),
        (["serve", "--http", "0.0.0.0:8024"], "pass --lab"),
        (["simulator", "--account", "nocolon"], "ID:PASSWORD"),
    ],
)
def test_bad_configuration_is_one_line_and_nonzero(args: list[str], needle: str) -> None:
    result = run(*args)
    assert result.returncode != 0
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_database_and_port_in_use(tmp_path: Path) -> None:
    result = run(
        "serve",
        "--database-url",
        f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/x",
        "--http",
        f"127.0.0.1:{free_port()}",
        "--simulator-smpp",
        f"127.0.0.1:{free_port()}",
        "--simulator-http",
        str(free_port()),
    )
    assert result.returncode == 2
    assert "IDEA24_DATABASE_URL: cannot use" in result.stderr

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(
            "serve",
            "--database-url",
            f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
            "--http",
            f"127.0.0.1:{port}",
            "--simulator-smpp",
            f"127.0.0.1:{free_port()}",
            "--simulator-http",
            str(free_port()),
        )
    assert result.returncode == 2
    assert f"IDEA24_HTTP: cannot listen on 127.0.0.1:{port}" in result.stderr


def test_db_upgrade_and_seed(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'seed.db'}"
    result = run("db", "upgrade", "--database-url", url)
    assert result.returncode == 0, result.stderr
    result = run("db", "seed", "--demo", "--subscribers", "50", "--database-url", url)
    assert result.returncode == 0, result.stderr
    assert "50 synthetic" in result.stdout
    again = run("db", "seed", "--demo", "--database-url", url)
    assert again.returncode == 0 and "0 demo rows" in again.stdout
