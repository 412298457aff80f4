"""A minimal SMSC on our codec with hooks, for driving the ESME into corners over loopback.

The simulator (simulator/) is the full SMSC; this one exists so the session's own tests can
hold responses, answer out of order, refuse binds or drop the connection at an exact PDU.
Its own behaviour is checked by the small tests at the bottom.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.settings import SmscProfile
from gateway.smpp.codec import SmppConnection
from gateway.smpp.errors import ProtocolError
from gateway.smpp.pdu import Pdu, Status

#: What the hook returns for a submit_sm: a status to answer now, or None to hold the response.
SubmitHook = Callable[["Client", Pdu], Awaitable[int | None]]


@dataclass
class Client:
    """One ESME connection as the SMSC sees it."""

    conn: SmppConnection
    writer: asyncio.StreamWriter
    bind: Pdu | None = None
    received: list[Pdu] = field(default_factory=list)
    waiting: dict[int, asyncio.Future[Pdu]] = field(default_factory=dict)

    def write(self, pdu: Pdu) -> int:
        data = self.conn.send(pdu)
        if not self.writer.is_closing():
            self.writer.write(data)
        return self.conn.last_sequence

    async def request(self, pdu: Pdu, within: float = 5.0) -> Pdu:
        seq = self.conn.next_sequence()
        fut: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
        self.waiting[seq] = fut
        self.write(Pdu(pdu.command, seq, pdu.status, pdu.params, pdu.extra_tlvs))
        return await asyncio.wait_for(fut, within)


class MiniSmsc:
    def __init__(self, accounts: dict[str, str] | None = None) -> None:
        self.accounts = accounts or {"idea24": "secret"}
        self.clients: list[Client] = []
        self.submits: list[Pdu] = []  # every submit_sm received (including refused ones)
        self.accepted: dict[str, Pdu] = {}  # message id → submit_sm answered OK
        self.held: list[tuple[Client, Pdu]] = []  # submits whose response is held
        self.bind_attempts = 0
        self.refuse_binds = False
        self.submit_hook: SubmitHook | None = None
        self.bound = asyncio.Event()
        self.activity = asyncio.Event()
        self.id_format: Callable[[int], str] = lambda n: f"{n:x}"
        self._ids = itertools.count(1000)
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self, port: int = 0) -> MiniSmsc:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        await self.drop_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def drop_all(self) -> None:
        """Close every connection at once, answering nothing more (an SMSC restart)."""
        for client in self.clients:
            client.writer.close()
        self.clients.clear()
        self.held.clear()
        self.bound.clear()

    def profile(self, **options: Any) -> SmscProfile:
        values: dict[str, Any] = {"response_timeout": 2.0, "enquire_link": 30.0, **options}
        return SmscProfile("idea24", self.accounts["idea24"], "127.0.0.1", self.port, **values)

    @property
    def client(self) -> Client:
        return self.clients[-1]

    def accept(self, client: Client, pdu: Pdu) -> None:
        message_id = self.id_format(next(self._ids))
        self.accepted[message_id] = pdu
        client.write(pdu.response(Status.ESME_ROK, message_id=message_id))

    def release_held(self) -> None:
        held, self.held = self.held, []
        for client, pdu in held:
            self.accept(client, pdu)

    async def deliver(self, within: float = 5.0, **params: Any) -> Pdu:
        """Send a deliver_sm to the bound ESME and return its deliver_sm_resp."""
        base = {"source_addr_ton": 1, "source_addr_npi": 1, "dest_addr_ton": 0}
        return await self.client.request(Pdu("deliver_sm", params={**base, **params}), within)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = Client(SmppConnection("smsc"), writer)
        self.clients.append(client)
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                client.conn.receive_data(data)
                while (event := client.conn.next_event()) is not None:
                    if isinstance(event, ProtocolError):
                        client.writer.write(client.conn.nack_for(event))
                        continue
                    client.received.append(event)
                    self.activity.set()
                    await self._handle(client, event)
        except (ConnectionError, OSError):
            return
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
            if client in self.clients:
                self.clients.remove(client)

    async def _handle(self, client: Client, pdu: Pdu) -> None:
        if pdu.is_response:
            fut = client.waiting.pop(pdu.sequence, None)
            if fut is not None and not fut.done():
                fut.set_result(pdu)
            return
        if pdu.command.startswith("bind_"):
            self.bind_attempts += 1
            ok = not self.refuse_binds and self.accounts.get(str(pdu.get("system_id"))) == pdu.get(
                "password"
            )
            status = Status.ESME_ROK if ok else Status.ESME_RBINDFAIL
            client.write(pdu.response(status, system_id="mini"))
            if ok:
                client.bind = pdu
                self.bound.set()
        elif pdu.command == "submit_sm":
            self.submits.append(pdu)
            answer = (
                Status.ESME_ROK if self.submit_hook is None else await self.submit_hook(client, pdu)
            )
            if answer is None:
                self.held.append((client, pdu))
            elif answer == Status.ESME_ROK:
                self.accept(client, pdu)
            else:
                client.write(pdu.response(answer, message_id=""))
        elif pdu.command == "enquire_link":
            client.write(pdu.response())
        elif pdu.command == "unbind":
            client.write(pdu.response())
            client.writer.close()


async def test_mini_smsc_refuses_a_wrong_password() -> None:
    smsc = await MiniSmsc().start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", smsc.port)
        conn = SmppConnection("esme")
        writer.write(
            conn.send(Pdu("bind_transceiver", params={"system_id": "idea24", "password": "x"}))
        )
        conn.receive_data(await asyncio.wait_for(reader.read(1024), 5))
        resp = conn.next_event()
        assert isinstance(resp, Pdu) and resp.status == Status.ESME_RBINDFAIL
        writer.close()
    finally:
        await smsc.stop()
