"""Bounds on the HTTP side: open connections, time to send a request's headers, idle time, and
the process's open-file limit.

aiohttp reads headers with no deadline: 1,000 connections that each sent half a request were
held for 70 s and more, each holding a descriptor the SMPP binds and the database pools also
need. :class:`ConnectionLimits` sits between the listening socket and aiohttp's protocol
factory: past ``max_connections`` a new connection gets ``503`` and is closed at once; a
connection that has not completed its first request's headers within ``header_timeout`` is
closed. Idle keep-alive connections are closed by aiohttp itself (``keepalive_timeout``, given
to the runner). A later request on a kept-alive connection starts with that idle limit, not
the header deadline.

:func:`raise_nofile_limit` lifts the soft open-file limit to the hard one at start; the
connection cap is kept :data:`FD_RESERVE` below it so the SMPP side, Redis and the database
never starve for descriptors.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web

log = logging.getLogger(__name__)

#: Descriptors kept out of the HTTP side's reach (binds, pools, log files, the simulator).
FD_RESERVE = 256
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n"
    b"Retry-After: 1\r\n\r\n"
)


def raise_nofile_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:  # a container may refuse: keep what we have
            log.warning("open-file limit stays at %d: %s", soft, exc)
    return soft


class ConnectionLimits:
    def __init__(self, max_connections: int, header_timeout: float) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.refused = 0  # connections past the cap
        self.timed_out = 0  # connections closed for not sending headers in time
        self._open: dict[asyncio.BaseTransport, _Guarded] = {}
        self._factory: Callable[[], asyncio.Protocol] | None = None

    @property
    def open(self) -> int:
        return len(self._open)

    def fit_descriptors(self, soft_limit: int) -> None:
        """Keep the cap :data:`FD_RESERVE` below the process's open-file limit."""
        self.max_connections = max(1, min(self.max_connections, soft_limit - FD_RESERVE))

    def serve(self, factory: Callable[[], asyncio.Protocol]) -> ConnectionLimits:
        """Wrap aiohttp's protocol factory (``runner.server``); pass the result to
        ``loop.create_server``."""
        self._factory = factory
        return self

    def __call__(self) -> asyncio.Protocol:
        assert self._factory is not None, "serve() first"
        return _Guarded(self, self._factory())

    def _seen(self, transport: asyncio.BaseTransport | None) -> None:
        guarded = self._open.get(transport) if transport is not None else None
        if guarded is not None:
            guarded.request_seen()

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Headers complete: the connection's header deadline is met."""
        self._seen(request.transport)
        return await handler(request)


class _Guarded(asyncio.Protocol):
    """One connection: counted, refused past the cap, closed if its headers never complete."""

    def __init__(self, limits: ConnectionLimits, inner: asyncio.Protocol) -> None:
        self._limits = limits
        self._inner = inner
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        limits = self._limits
        transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        if limits.open >= limits.max_connections:
            limits.refused += 1
            transport.write(REFUSAL)
            transport.close()
            return
        self._transport = transport
        limits._open[transport] = self
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(limits.header_timeout, self._too_slow)
        self._inner.connection_made(transport)

    def request_seen(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _too_slow(self) -> None:
        self._timer = None
        if self._transport is not None:
            self._limits.timed_out += 1
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._transport is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._transport is not None else None

    def pause_writing(self) -> None:
        if self._transport is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._transport is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is None:
            return  # refused: aiohttp never saw it
        self.request_seen()
        self._limits._open.pop(self._transport, None)
        self._inner.connection_lost(exc)


async def start_http(
    runner: web.AppRunner, limits: ConnectionLimits, host: str, port: int, **kwargs: Any
) -> asyncio.Server:
    """Listen on ``host:port`` through ``limits`` (after ``runner.setup()``); close the returned
    server before ``runner.cleanup()``."""
    server = runner.server
    assert server is not None, "runner.setup() first"
    loop = asyncio.get_running_loop()
    return await loop.create_server(limits.serve(server), host, port, reuse_address=True, **kwargs)
