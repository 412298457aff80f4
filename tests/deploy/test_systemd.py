"""deploy/systemd: the unit runs idea24 as its own user, restarts it, confines it, and passes
``systemd-analyze verify``; the environment file example is one idea24 accepts."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from gateway.settings import ENV_KEYS, load_settings
from tests.deploy.conftest import DEPLOY, run
from tests.e2e.serve import idea24_command

UNIT = DEPLOY / "systemd" / "idea24.service"
ENV_EXAMPLE = DEPLOY / "systemd" / "idea24.env.example"
INSTALLED = "/opt/idea24/bin/idea24"


def unit() -> dict[str, dict[str, list[str]]]:
    """Section → key → values (a key may repeat, e.g. SystemCallFilter)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def env_example() -> dict[str, str]:
    pairs = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value
    return pairs


def test_the_unit_runs_idea24_as_its_own_user_and_restarts_it() -> None:
    service = unit()["Service"]
    assert service["User"] == ["idea24"] and service["Group"] == ["idea24"]
    assert service["ExecStart"] == [f"{INSTALLED} serve"]
    assert service["Restart"] == ["on-failure"]
    assert service["EnvironmentFile"] == ["/etc/idea24/idea24.env"]
    # configuration is read once at start: no reload the server would not honour
    assert "ExecReload" not in service
    assert unit()["Install"]["WantedBy"] == ["multi-user.target"]


def test_the_unit_is_hardened() -> None:
    service = unit()["Service"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "RestrictSUIDSGID": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert service[key] == [value], key
    assert service["StateDirectory"] == ["idea24"]  # the one writable place


def _verifiable(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's idea24 (verify wants it to exist)."""
    [binary] = idea24_command()[:1]
    path = tmp_path / "idea24.service"
    path.write_text(UNIT.read_text().replace(INSTALLED, binary))
    return path


def test_systemd_analyze_verify_is_silent(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (optional tooling)")
    code, out = run("systemd-analyze", "verify", "--man=no", str(_verifiable(tmp_path)))
    assert code == 0, out
    assert out.strip() == "", out  # unknown keys are only warned about: none allowed


def test_systemd_rates_the_unit_well_confined(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (optional tooling)")
    code, out = run("systemd-analyze", "security", "--offline=yes", str(_verifiable(tmp_path)))
    if "--offline" in out and code != 0:
        pytest.skip("this systemd-analyze cannot rate a unit offline")
    level = re.search(r"Overall exposure level for \S+: ([\d.]+)", out)
    assert level, out
    assert float(level.group(1)) <= 2.0, out


def test_the_environment_example_holds_only_settings_idea24_reads() -> None:
    pairs = env_example()
    assert set(pairs) <= set(ENV_KEYS), set(pairs) - set(ENV_KEYS)
    settings = load_settings(environ=pairs)
    assert settings.redis_url and settings.smsc
    assert settings.database_url.startswith("postgresql+asyncpg://")
