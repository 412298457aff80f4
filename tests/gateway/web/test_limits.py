"""HTTP bounds over loopback: a cap on open connections, a deadline for a request's headers, an
idle limit for kept-alive connections, and the open-file limit raised at start."""

from __future__ import annotations

import asyncio
import resource
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web

from gateway.web.limits import FD_RESERVE, ConnectionLimits, raise_nofile_limit, start_http
from tests.conftest import free_port


async def _hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


@pytest.fixture
async def served() -> AsyncIterator[tuple[int, ConnectionLimits]]:
    limits = ConnectionLimits(max_connections=3, header_timeout=0.3)
    app = web.Application(middlewares=[limits.middleware])
    app.router.add_get("/", _hello)
    runner = web.AppRunner(app, keepalive_timeout=0.5, access_log=None)
    await runner.setup()
    port = free_port()
    listener = await start_http(runner, limits, "127.0.0.1", port)
    try:
        yield port, limits
    finally:
        listener.close()
        await runner.cleanup()


async def _until(condition: Callable[[], bool], within: float = 2.0) -> None:
    """Poll a counter the server moves (bounded: ``within`` seconds)."""
    for _ in range(int(within / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


async def _until_closed(reader: asyncio.StreamReader, within: float = 5.0) -> bytes:
    got = b""
    async with asyncio.timeout(within):
        try:
            while chunk := await reader.read(4096):
                got += chunk
        except ConnectionResetError:
            pass
    return got


async def test_cap_and_header_deadline(served: tuple[int, ConnectionLimits]) -> None:
    port, limits = served
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
    for _, writer in held:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # half a request, never finished
        await writer.drain()
    await _until(lambda: limits.open == 3)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    refused = await _until_closed(reader)
    assert refused.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in refused
    writer.close()
    assert limits.refused == 1
    # The three half-sent requests are cut at the header deadline, not held.
    for r, w in held:
        assert await _until_closed(r) == b""
        w.close()
    assert limits.timed_out == 3
    await _until(lambda: limits.open == 0)
    # Room again: a whole request is answered.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    async with asyncio.timeout(2):
        head = await reader.readuntil(b"hello")
    assert head.startswith(b"HTTP/1.1 200")
    # Kept alive, then idle: aiohttp closes it after keepalive_timeout (0.5 s), and a served
    # connection is not counted as slow.
    assert await _until_closed(reader) == b""
    writer.close()
    assert limits.timed_out == 3


def test_open_file_limit_raised_to_hard_and_cap_kept_below() -> None:
    soft = raise_nofile_limit()
    now_soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft == now_soft
    assert hard == resource.RLIM_INFINITY or now_soft == hard
    limits = ConnectionLimits(max_connections=10_000, header_timeout=1.0)
    limits.fit_descriptors(1024)
    assert limits.max_connections == 1024 - FD_RESERVE
