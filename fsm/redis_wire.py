"""Hot-path Redis commands on connections held out of a redis-py client's pool.

Why: every turn makes a few Redis round trips (its dialog state, the outbox), and a script call
through the redis-py client cost ~140 µs of CPU here for a ~20 µs exchange: a pool checkout and
release (a lock, a condition), the retry and timeout wrappers, argument encoding and packing in
Python, response callbacks. With batches of one turn (light load, or the load split over
several processes) that was a third of the server's CPU per turn. :class:`RedisWire` sends
the same commands on the same client's own connections — so its URL, credentials, TLS, database
and retry policy apply unchanged — but keeps a few connections checked out between calls, packs
with hiredis when it is installed, and reads the reply with the connection's own parser: ~35 µs.

Errors keep redis-py's meaning: an error reply raises its ``ResponseError`` (the connection stays
usable); a lost connection is disconnected by redis-py and the call retried under the client's
``Retry`` (a Redis restart is ridden out as before); a call cancelled mid-way leaves its
connection disconnected (redis-py does that), never with an answer still to read. A script the
server lacks (``NOSCRIPT``) is loaded and the call made again, as redis-py's ``Script`` does.

Plain Redis (or Sentinel) only: a Redis Cluster client routes by key and has no single pool, so
callers keep the client's own methods there (:func:`wire_for` returns ``None``).
"""

from __future__ import annotations

from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - hiredis is in the "fast" extra
    _hiredis_pack = None  # type: ignore[assignment]

#: Idle connections kept checked out at most; more calls at once borrow from the pool and give
#: the connection back, so the client's other users never starve.
KEEP = 8


class RedisWire:
    """``execute(*args)`` and ``evalsha(script, keys, args)`` on the client's connections."""

    def __init__(self, client: Any, keep: int = KEEP) -> None:
        self._pool = client.connection_pool
        self._keep = keep
        self._idle: list[Any] = []
        self.calls = 0  # round trips made (tests, metrics)

    async def execute(self, *args: Any) -> Any:
        """One command, its reply as the connection's parser gives it (bytes unless the client
        decodes): no response callbacks, so e.g. XREADGROUP comes back as nested lists."""
        conn = self._idle.pop() if self._idle else await self._pool.get_connection()
        try:
            packed = _pack(conn, args)
            reply = await conn.retry.call_with_retry(
                lambda: _round_trip(conn, packed), lambda _error: conn.disconnect()
            )
        finally:
            await self._give_back(conn)
        self.calls += 1
        return reply

    async def evalsha(self, script: Any, keys: list[Any], args: list[Any]) -> Any:
        """``script`` (from ``register_script``) run by its SHA; loaded first if Redis lost it."""
        try:
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            await self.execute("SCRIPT", "LOAD", script.script)
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)

    async def _give_back(self, conn: Any) -> None:
        if len(self._idle) < self._keep:
            self._idle.append(conn)  # disconnected ones too: the next send reconnects
        else:
            await self._pool.release(conn)

    async def aclose(self) -> None:
        """The kept connections back to the pool (which the client then closes)."""
        idle, self._idle = self._idle, []
        for conn in idle:
            await self._pool.release(conn)


def is_cluster(client: Any) -> bool:
    """A Redis Cluster client: routes by key, one pool per node."""
    return isinstance(client, RedisCluster)


def wire_for(client: Any) -> RedisWire | None:
    """A wire for ``client``, or ``None`` for a cluster client (no single pool to hold from)."""
    if is_cluster(client) or not hasattr(client, "connection_pool"):
        return None
    return RedisWire(client)


def _pack(conn: Any, args: tuple[Any, ...]) -> Any:
    if _hiredis_pack is not None:
        return _hiredis_pack(args)
    return conn.pack_command(*args)


async def _round_trip(conn: Any, packed: Any) -> Any:
    await conn.send_packed_command(packed, check_health=False)
    return await conn.read_response()
