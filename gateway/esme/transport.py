"""The TCP side of an SMPP link: one connection whose writes leave together."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast


class LinkProtocol(asyncio.Protocol):
    """One TCP connection. Writes made in one loop iteration leave in one ``send`` call: with a
    full window that is dozens of PDUs per system call instead of one each."""

    def __init__(
        self,
        on_data: Callable[[LinkProtocol, bytes], None],
        on_lost: Callable[[LinkProtocol], None],
    ) -> None:
        self._on_data = on_data
        self._on_lost = on_lost
        self._loop = asyncio.get_running_loop()
        self.lost: asyncio.Future[None] = self._loop.create_future()
        self.transport: asyncio.Transport | None = None
        #: why the connection ended (a TLS alert after the handshake shows up here)
        self.error: Exception | None = None
        self._out: list[bytes | bytearray] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike
        self.transport = cast(asyncio.Transport, transport)

    def write(self, data: bytes | bytearray) -> None:
        if not self._out:
            self._loop.call_soon(self.flush)
        self._out.append(data)

    def flush(self) -> None:
        out, self._out = self._out, []
        transport = self.transport
        if out and transport is not None and not transport.is_closing():
            transport.write(out[0] if len(out) == 1 else b"".join(out))

    def close(self) -> None:
        """Close after what was written so far (responses, a nack) has left."""
        self.flush()
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self._on_data(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.error = exc
        if not self.lost.done():
            self.lost.set_result(None)
        self._on_lost(self)
