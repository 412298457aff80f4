"""Script calls made in the same event-loop tick go to Redis as one pipeline.

Why: a turn makes two Redis calls (open: lock + rate count + load; close: guarded save +
release), and with many turns in flight redis-py's per-command overhead — connection checkout,
timeouts, retry wrapper, packing, one socket write and one read per command — was a quarter of
the server's CPU per turn on PostgreSQL + Redis. Batched, a tick's calls share one connection
checkout, one write and one read of all the answers; Redis still runs each script atomically and
in the order the calls were made. Each caller awaits its own result (or its own error), so
nothing about a call's meaning changes — only how it travels.

A batch does not wait for the previous one: calls of the next tick go as the next pipeline on
another pooled connection, so a batch never adds a round trip to a call's latency. A script the
server does not know (``NOSCRIPT``: Redis restarted or ``SCRIPT FLUSH``) is loaded and its calls
of that batch are sent again; a connection error is retried by the client's own retry policy for
the whole pipeline, exactly as for a single command.

Scripts registered through :meth:`ScriptBatch.register` go further: a tick's calls of them are
one ``EVALSHA`` of a dispatcher script that holds every registered body as a Lua function and
runs the calls in order, each under ``pcall`` so each caller still gets its own result or error.
A pipelined ``EVALSHA`` cost ~15 µs of redis-py CPU per call (packing, its own reply parsing);
inside one call it is a few µs of arguments. The calls of a tick then run as one atomic script
instead of one after the other — nothing can come between them, which only narrows what another
client can see. Keys of many subscribers meet in one script, so this is for one Redis server
(or a replica set), not Redis Cluster, whose scripts must keep to one hash slot: a cluster
client keeps the pipelines.

Dispatcher calls and lone calls travel on :class:`fsm.redis_wire.RedisWire` (held connections,
hiredis packing): ~35 instead of ~140 µs of CPU per round trip.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from backend.batching import TickFlush, fail_all
from fsm.redis_wire import is_cluster, wire_for

#: Calls per pipeline at most (a very long tick is sent as several pipelines).
MOST = 512

Call = tuple[Any, list[Any], list[Any], "asyncio.Future[Any]"]

# The dispatcher's loop. ARGV[1] = number of calls; then per call: the function's index, its key
# count, its argument count, its arguments. KEYS are the calls' keys one after another.
_DISPATCH = """
local out, k, pos = {}, 1, 2
for c = 1, tonumber(ARGV[1]) do
  local f, nk, na = F[tonumber(ARGV[pos])], tonumber(ARGV[pos + 1]), tonumber(ARGV[pos + 2])
  pos = pos + 3
  local ks, as = {}, {}
  for j = 1, nk do ks[j] = KEYS[k]; k = k + 1 end
  for j = 1, na do as[j] = ARGV[pos]; pos = pos + 1 end
  local ok, res = pcall(f, ks, as)
  if ok and type(res) == 'table' and res.err then ok, res = false, res.err end
  if ok then out[c] = {1, res}
  elseif type(res) == 'table' and res.err then out[c] = {0, res.err}
  else out[c] = {0, tostring(res)} end
end
return out
"""


def dispatcher_source(bodies: list[str]) -> str:
    """One script holding ``bodies`` as functions ``F[1..n]`` of ``(KEYS, ARGV)``, then the loop."""
    functions = "".join(
        f"F[{i}] = function(KEYS, ARGV)\n{body}\nend\n" for i, body in enumerate(bodies, 1)
    )
    return f"local F = {{}}\n{functions}{_DISPATCH}"


class ScriptBatch:
    """Sends the script calls of one event-loop tick together: as one dispatcher ``EVALSHA``
    when every script was registered through :meth:`register` (and the client is no cluster
    client), else as one pipeline of ``EVALSHA`` s; a lone call as a plain ``EVALSHA``."""

    def __init__(self, client: Any, most: int = MOST, *, combine: bool | None = None) -> None:
        self._client = client
        self._most = most
        self._pending: list[Call] = []
        self._tick = TickFlush(self._flush)
        self._combine = not is_cluster(client) if combine is None else combine
        self._wire = wire_for(client)  # None for a cluster client: its own methods route
        self._bodies: list[str] = []
        self._index: dict[str, int] = {}  # a registered script's SHA → its function in F
        self._dispatcher: Any = None
        self.pipelines = 0  # how many pipelines went out (tests, metrics)
        self.combined = 0  # how many dispatcher calls went out
        self.calls = 0

    def register(self, source: str) -> Any:
        """``client.register_script(source)``, and its calls of one tick may share one script."""
        script = self._client.register_script(source)
        if script.sha not in self._index:
            self._bodies.append(source)
            self._index[script.sha] = len(self._bodies)
            self._dispatcher = None  # rebuilt with the new body on the next combined call
        return script

    async def call(self, script: Any, keys: list[Any], args: list[Any]) -> Any:
        """Run ``script`` (from ``register_script``) with ``keys`` and ``args``; its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((script, keys, args, future))
        self._tick.request()
        return await future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if len(pending) == 1:  # a pipeline of one costs ~75 µs more CPU than the plain call
            self._tick.spawn(self._send_one(pending[0]))
            return
        index = self._index
        combine = self._combine and all(call[0].sha in index for call in pending)
        send = self._send_combined if combine else self._send
        for start in range(0, len(pending), self._most):
            self._tick.spawn(send(pending[start : start + self._most]))

    async def _send_combined(self, batch: list[Call]) -> None:
        """The batch as one call of the dispatcher (loaded first if Redis lacks it)."""
        try:
            if self._dispatcher is None:
                self._dispatcher = self._client.register_script(dispatcher_source(self._bodies))
            index = self._index
            keys: list[Any] = []
            args: list[Any] = [len(batch)]
            for script, call_keys, call_args, _ in batch:
                keys += call_keys
                args += (index[script.sha], len(call_keys), len(call_args), *call_args)
            self.combined += 1
            self.calls += len(batch)
            if self._wire is not None:
                results = await self._wire.evalsha(self._dispatcher, keys, args)
            else:
                results = await self._dispatcher(keys=keys, args=args)
        except BaseException as exc:
            fail_all((future for *_, future in batch), exc)
            return
        for (*_, future), (ok, value) in zip(batch, results, strict=True):
            if future.done():  # its caller was cancelled
                continue
            if ok:
                future.set_result(value)
            else:
                message = value.decode() if isinstance(value, bytes) else str(value)
                future.set_exception(ResponseError(message))

    async def _send_one(self, call: tuple[Any, list[Any], list[Any], asyncio.Future[Any]]) -> None:
        """A lone call of its tick, as a plain ``EVALSHA`` (the script loads itself if needed)."""
        script, keys, args, future = call
        self.calls += 1
        try:
            if self._wire is not None:
                result = await self._wire.evalsha(script, keys, args)
            else:
                result = await script(keys=keys, args=args)
        except BaseException as exc:
            fail_all([future], exc)
            return
        if not future.done():
            future.set_result(result)

    async def _send(
        self, batch: list[tuple[Any, list[Any], list[Any], asyncio.Future[Any]]]
    ) -> None:
        try:
            unknown = self._settle(batch, await self._execute(batch), retry_noscript=True)
            if unknown:
                for script in {id(e[0]): e[0] for e in unknown}.values():
                    await self._client.script_load(script.script)
                self._settle(unknown, await self._execute(unknown), retry_noscript=False)
        except BaseException as exc:
            fail_all((future for *_, future in batch), exc)

    @staticmethod
    def _settle(
        batch: list[tuple[Any, list[Any], list[Any], asyncio.Future[Any]]],
        results: list[Any],
        *,
        retry_noscript: bool,
    ) -> list[tuple[Any, list[Any], list[Any], asyncio.Future[Any]]]:
        """Answer each caller; the calls that met ``NOSCRIPT`` (when to be retried)."""
        unknown = []
        for entry, result in zip(batch, results, strict=True):
            future = entry[3]
            if future.done():  # its caller was cancelled
                continue
            if retry_noscript and isinstance(result, NoScriptError):
                unknown.append(entry)
            elif isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
        return unknown

    async def _execute(self, batch: list[tuple[Any, list[Any], list[Any], Any]]) -> list[Any]:
        self.pipelines += 1
        self.calls += len(batch)
        pipe = self._client.pipeline(transaction=False)
        for script, keys, args, _ in batch:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        result: list[Any] = await pipe.execute(raise_on_error=False)
        return result

    async def aclose(self) -> None:
        """Wait for the pipelines in flight (their callers get their answers)."""
        await self._tick.wait()
        if self._wire is not None:
            await self._wire.aclose()
