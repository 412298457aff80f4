"""``IDEA24_REDIS_URL`` → a redis-py asyncio client: one Redis, or the master behind Sentinels.

Forms: ``redis://[:PASSWORD@]HOST:PORT/DB`` (also ``rediss://``, ``unix://``), and
``redis+sentinel://[:PASSWORD@]H1:26379,H2:26380/SERVICE/DB`` (``rediss+sentinel://`` for TLS to
the master). With Sentinel every new connection asks the sentinels where the master of
``SERVICE`` is (redis-py's ``SentinelConnectionPool``): after a failover a broken connection, a
READONLY answer from a demoted master or a blocked read it unblocked makes the client reconnect,
and the retry policy the caller gives (store, outbox) carries the command over to the new
master. The password, when given, is the master's; the sentinels are asked without one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis, SSLConnection
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection

from backend.errors import ConfigError

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
PLAIN_SCHEMES = ("redis", "rediss", "unix")
#: Seconds a sentinel may take to answer "where is the master" before the next one is asked.
SENTINEL_TIMEOUT = 1.0


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    """A parsed ``redis+sentinel://`` URL."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    password: str | None
    tls: bool


def is_redis_url(url: str) -> bool:
    return urlsplit(url).scheme in (*PLAIN_SCHEMES, *SENTINEL_SCHEMES)


def parse_sentinel(url: str) -> SentinelTarget | None:
    """The sentinels, service and database of a Sentinel URL; None for any other URL."""
    parts = urlsplit(url)
    if parts.scheme not in SENTINEL_SCHEMES:
        return None
    shape = "expected redis+sentinel://HOST:PORT[,HOST:PORT...]/SERVICE[/DB]"
    hosts = parts.netloc.rpartition("@")[2]
    sentinels = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"IDEA24_REDIS_URL: {shape}, got host {item!r}")
        sentinels.append((host.strip("[]"), int(port)))
    service, _, db = parts.path.strip("/").partition("/")
    if not service or not (db or "0").isdigit():
        raise ConfigError(f"IDEA24_REDIS_URL: {shape}")
    password = unquote(parts.password) if parts.password else None
    return SentinelTarget(
        tuple(sentinels), service, int(db or 0), password, parts.scheme.startswith("rediss")
    )


class FailoverConnection(SentinelManagedConnection):
    """Asks the sentinels for the master on every reconnect. redis-py's own reconnect inside a
    command's retries (``send_packed_command`` → ``connect_check_health``) skips the lookup and
    dials the dead master until the retries run out (redis/redis-py#3874, open)."""

    async def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if self.is_connected:
            return
        if self.connection_pool.is_master:
            self.host, self.port = await self.connection_pool.get_master_address()
        # One dial per lookup: the caller's retry policy looks the master up again.
        await super().connect_check_health(check_health, retry_socket_connect=False)


class FailoverSSLConnection(FailoverConnection, SSLConnection):
    """:class:`FailoverConnection` over TLS (``rediss+sentinel://``)."""


class SentinelRedis(Redis):
    """The master's client; closing it closes the connections to the sentinels too."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        pool = self.connection_pool
        if isinstance(pool, SentinelConnectionPool):
            await pool.sentinel_manager.aclose()


class BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """Sentinel's master lookup with a bounded pool that waits for a free connection."""


def redis_from_url(url: str, *, blocking: int | None = None, **options: Any) -> Redis:
    """A client for ``url``; ``blocking=N``: at most N connections, callers wait for one
    (``options["timeout"]`` seconds) instead of failing; other options go to the connections."""
    target = parse_sentinel(url)
    if target is None:
        if blocking is None:
            client: Redis = Redis.from_url(url, **options)
            return client
        pool = BlockingConnectionPool.from_url(url, max_connections=blocking, **options)
        return Redis.from_pool(pool)
    sentinel_options = {
        "socket_timeout": SENTINEL_TIMEOUT,
        "socket_connect_timeout": SENTINEL_TIMEOUT,
    }
    manager = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_options)
    master: dict[str, Any] = {
        "db": target.db,
        "password": target.password,
        "connection_class": FailoverSSLConnection if target.tls else FailoverConnection,
        **options,
    }
    if blocking is None:
        return manager.master_for(  # type: ignore[no-any-return]
            target.service, redis_class=SentinelRedis, **master
        )
    return manager.master_for(  # type: ignore[no-any-return]
        target.service,
        redis_class=SentinelRedis,
        connection_pool_class=BlockingSentinelPool,
        max_connections=blocking,
        **master,
    )
