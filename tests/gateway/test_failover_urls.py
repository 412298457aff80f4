"""The failover forms of IDEA24_REDIS_URL (Sentinel) and IDEA24_DATABASE_URL (several hosts)."""

from __future__ import annotations

import pytest

from backend.db import create_engine, normalise_url
from backend.errors import ConfigError
from fsm.redis_connect import SentinelRedis, parse_sentinel, redis_from_url
from gateway.settings import load_settings


def test_sentinel_url_names_sentinels_service_and_database() -> None:
    target = parse_sentinel("redis+sentinel://:s3cret@h1:26379,h2:26380/idea24/3")
    assert target is not None
    assert target.sentinels == (("h1", 26379), ("h2", 26380))
    assert (target.service, target.db, target.password, target.tls) == (
        "idea24",
        3,
        "s3cret",
        False,
    )
    assert parse_sentinel("redis://h:6379/0") is None
    for bad in (
        "redis+sentinel://h1/idea24/0",
        "redis+sentinel://h1:1/",
        "redis+sentinel://h:1/s/x",
    ):
        with pytest.raises(ConfigError, match="IDEA24_REDIS_URL"):
            parse_sentinel(bad)


async def test_sentinel_client_is_built_without_connecting() -> None:
    client = redis_from_url("redis+sentinel://127.0.0.1:1/idea24/2", blocking=4, timeout=1)
    assert isinstance(client, SentinelRedis)
    assert client.connection_pool.connection_kwargs["db"] == 2
    await client.aclose()


def test_settings_accept_sentinel_and_refuse_other_schemes() -> None:
    url = "redis+sentinel://h1:26379,h2:26380/idea24/0"
    assert load_settings(environ={"IDEA24_REDIS_URL": url}).redis_url == url
    with pytest.raises(ConfigError, match="redis\\+sentinel://"):
        load_settings(environ={"IDEA24_REDIS_URL": "http://h:1"})


async def test_several_postgresql_hosts_reach_the_asyncpg_dialect_as_lists() -> None:
    url = "postgresql://u:pw@h1:5432,h2/db?target_session_attrs=read-write"
    parsed = normalise_url(url)
    assert parsed.query["host"] == ("h1:5432", "h2:5432")
    engine = create_engine(url)
    try:
        _args, kwargs = engine.dialect.create_connect_args(engine.url)
    finally:
        await engine.dispose()
    assert kwargs["host"] == ["h1", "h2"] and kwargs["port"] == [5432, 5432]
    assert kwargs["target_session_attrs"] == "read-write" and kwargs["password"] == "pw"
    assert str(normalise_url("postgresql://u@h1:5432/db")) == "postgresql+asyncpg://u@h1:5432/db"
