from __future__ import annotations

import pytest

from backend.errors import ConfigError
from gateway.settings import Settings, SmscProfile, load_settings


def test_defaults_are_the_embedded_ones() -> None:
    s = load_settings(environ={})
    assert s.database_url == "sqlite+aiosqlite:///idea24.db"
    assert s.redis_url is None
    assert s.uses_simulator
    assert (s.http_host, s.http_port) == ("127.0.0.1", 8024)
    assert s.short_code == "2424" and s.ussd_code == "*100#"
    assert s.encoding == "auto"
    assert load_settings(environ={"IDEA24_ENCODING": "ucs2"}).encoding == "ucs2"


def test_flags_beat_environment_beats_file(tmp_path) -> None:
    cfg = tmp_path / "idea24.toml"
    cfg.write_text('short_code = "1111"\nussd_code = "*101#"\nlanguage = "en"\n')
    env = {"IDEA24_SHORT_CODE": "2222", "IDEA24_HTTP": "127.0.0.2:9000"}
    s = load_settings({"short_code": "3333"}, env, cfg)
    assert s.short_code == "3333"
    assert s.ussd_code == "*101#"
    assert s.language == "en"
    assert (s.http_host, s.http_port) == ("127.0.0.2", 9000)


def test_smsc_urls_parse_with_options() -> None:
    s = load_settings(
        {"smsc": ["smpp://esme:s3cret@10.0.0.1:2776?window=64&rate=50&system_type=VMA&long=sar"]},
        environ={},
    )
    (p,) = s.smsc
    assert p == SmscProfile(
        "esme", "s3cret", "10.0.0.1", 2776, system_type="VMA", window=64, rate=50.0, long="sar"
    )
    assert "s3cret" not in repr(p) and "s3cret" not in repr(s)
    assert not s.uses_simulator


def test_env_smsc_allows_several_comma_separated() -> None:
    s = load_settings(environ={"IDEA24_SMSC": "smpp://a:b@h1:1,smpp://c:d@h2:2"})
    assert [p.host for p in s.smsc] == ["h1", "h2"]


@pytest.mark.parametrize(
    ("flags", "env", "needle"),
    [
        ({"smsc": ["http://x"]}, {}, "smpp://ID:PASSWORD@HOST:PORT"),
        ({"smsc": ["smpp://a:b@h:1?windw=3"]}, {}, "unknown option 'windw'"),
        ({"smsc": ["smpp://a:b@h:1?window=lots"]}, {}, "--smsc window"),
        ({}, {"IDEA24_DATABASE_URL": "mysql://x"}, "IDEA24_DATABASE_URL"),
        ({}, {"IDEA24_REDIS_URL": "http://x"}, "IDEA24_REDIS_URL"),
        ({}, {"IDEA24_HTTP": "8024"}, "IDEA24_HTTP"),
        ({}, {"IDEA24_USSD_CODE": "100"}, "IDEA24_USSD_CODE"),
        ({}, {"IDEA24_ENCODING": "latin2"}, "IDEA24_ENCODING: expected auto, ucs2 or"),
    ],
)
def test_errors_name_the_key(flags, env, needle) -> None:
    with pytest.raises(ConfigError, match=needle.replace("*", r"\*").replace("?", r"\?")):
        load_settings(flags, env)


def test_repr_masks_secrets() -> None:
    s = Settings(api_key="k3y", secret_key="s3c", database_url="postgresql+asyncpg://u:pw@h/db")
    text = repr(s)
    assert "k3y" not in text and "s3c" not in text and ":pw@" not in text


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql://u@db:5432/idea24", "postgresql+asyncpg://u@db:5432/idea24"),
        ("postgres://u@db/idea24", "postgresql+asyncpg://u@db/idea24"),
        ("sqlite:///var/idea24.db", "sqlite+aiosqlite:///var/idea24.db"),
        ("postgresql+asyncpg://u@db/idea24", "postgresql+asyncpg://u@db/idea24"),
    ],
)
def test_plain_database_urls_name_the_async_driver(given: str, used: str) -> None:
    """Operators write postgresql:// and sqlite:///; the server runs them on its drivers."""
    assert load_settings(environ={"IDEA24_DATABASE_URL": given}).database_url == used
    assert load_settings({"database_url": given}, environ={}).database_url == used


@pytest.mark.parametrize(
    ("flags", "refused"),
    [
        ({"http": "0.0.0.0:8024"}, "0.0.0.0"),
        ({"http": "[::]:8024"}, "[::]"),
        ({"http": "my-host.example:8024"}, "my-host.example"),
        ({"simulator_smpp_host": "0.0.0.0"}, "0.0.0.0"),
        ({"http": "127.0.0.1:8024"}, None),
        ({"http": "localhost:8024"}, None),
        ({"http": "[::1]:8024"}, None),
        ({"http": "0.0.0.0:8024", "lab": True}, None),
        ({"http": "0.0.0.0:8024", "smsc": "smpp://a:b@10.0.0.1:2775"}, None),  # no simulator
    ],
)
def test_simulator_off_loopback_needs_lab(flags: dict[str, object], refused: str | None) -> None:
    if refused is None:
        load_settings(flags, environ={})
        return
    with pytest.raises(ConfigError) as exc:
        load_settings(flags, environ={})
    assert str(exc.value).startswith("--lab:") and refused in str(exc.value)


def test_lab_mode_is_said_at_start(capsys: pytest.CaptureFixture[str]) -> None:
    from types import SimpleNamespace

    from gateway.cli import _print_banner

    simulator = SimpleNamespace(smpp_address=("0.0.0.0", 2775), http_url="http://0.0.0.0:8025")
    components = SimpleNamespace(simulator=simulator)
    _print_banner(load_settings({"http": "0.0.0.0:8024", "lab": True}, environ={}), components)
    assert "LAB MODE (--lab)" in capsys.readouterr().out
    _print_banner(load_settings({}, environ={}), components)
    assert "LAB MODE" not in capsys.readouterr().out
