"""Shared pieces of the bad-input and security tests: raw PDUs, mutations, raw SMPP peers.

Everything here talks bytes on purpose: the fuzz tests must be able to send what our own codec
would refuse to encode (lying lengths, broken TLVs), so frames are built with ``struct`` around
bodies the codec produced for valid PDUs. The peers are plain asyncio streams over loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.smpp import codec
from gateway.smpp.codec import Framer
from gateway.smpp.errors import RemoteProtocolError
from gateway.smpp.pdu import COMMAND_IDS, Pdu, Status

HEADER = struct.Struct(">LLLL")
READ_TIMEOUT = 5.0


def frame(command_id: int, body: bytes, *, sequence: int = 1, length: int | None = None) -> bytes:
    """A PDU with any header, ``length`` lying if given."""
    return HEADER.pack(16 + len(body) if length is None else length, command_id, 0, sequence) + body


def submit_sm(sequence: int, text: bytes = b"hello", **params: object) -> bytes:
    base: dict[str, object] = {
        "source_addr": "48600000001",
        "destination_addr": "2424",
        "short_message": text,
    }
    base.update(params)
    return codec.encode(Pdu("submit_sm", sequence, 0, base))


def deliver_sm(sequence: int, text: bytes = b"PAKIET", **params: object) -> bytes:
    base: dict[str, object] = {
        "source_addr": "48600000001",
        "destination_addr": "2424",
        "short_message": text,
    }
    base.update(params)
    return codec.encode(Pdu("deliver_sm", sequence, 0, base))


def bind(sequence: int, system_id: str, password: str) -> bytes:
    return codec.encode(
        Pdu(
            "bind_transceiver",
            sequence,
            0,
            {"system_id": system_id, "password": password, "interface_version": 0x34},
        )
    )


def enquire_link(sequence: int) -> bytes:
    return HEADER.pack(16, COMMAND_IDS["enquire_link"], 0, sequence)


# -- mutations ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mutant:
    """One bad frame and what a correct peer must do with it."""

    kind: str
    data: bytes
    #: Statuses a correct answer may carry (empty: any non-OK answer or a drop is acceptable).
    statuses: frozenset[int] = frozenset()
    #: The framing is lost: after the answer the connection must be closed.
    fatal: bool = False


def tlv(tag: int, value: bytes, *, length: int | None = None) -> bytes:
    return struct.pack(">HH", tag, len(value) if length is None else length) + value


@st.composite
def mutants(draw: st.DrawFn, valid: Callable[[int], bytes], sequence: int = 1000) -> Mutant:
    """A bad frame built from ``valid(sequence)`` (a whole, valid request PDU)."""
    good = valid(sequence)
    cid = int.from_bytes(good[4:8], "big")
    body = good[16:]
    kind = draw(
        st.sampled_from(
            [
                "unknown_command",
                "huge_length",
                "tiny_length",
                "body_cut",
                "bad_tlv_length",
                "tlv_overrun",
                "tlv_cstring_no_nul",
                "sm_length_lie",
                "flipped_bytes",
            ]
        )
    )
    if kind == "unknown_command":
        bad = draw(st.integers(0x200, 0x7FFFFFFF).filter(lambda c: c not in COMMAND_IDS.values()))
        return Mutant(kind, frame(bad, body, sequence=sequence), frozenset({Status.ESME_RINVCMDID}))
    if kind == "huge_length":
        length = draw(st.integers(codec.MAX_PDU_LENGTH + 1, 0xFFFFFFFF))
        data = frame(cid, body, sequence=sequence, length=length)
        return Mutant(kind, data, frozenset({Status.ESME_RINVCMDLEN}), fatal=True)
    if kind == "tiny_length":
        length = draw(st.integers(0, codec.MIN_PDU_LENGTH - 1))
        data = frame(cid, body, sequence=sequence, length=length)
        return Mutant(kind, data, frozenset({Status.ESME_RINVCMDLEN}), fatal=True)
    if kind == "body_cut":
        # The header says the truth about a body that lost its tail: fields run past the end.
        cut = draw(st.integers(0, max(0, len(body) - 8)))
        return Mutant(
            kind,
            frame(cid, body[:cut], sequence=sequence),
            frozenset({Status.ESME_RINVCMDLEN, Status.ESME_RINVMSGLEN}),
        )
    if kind == "bad_tlv_length":
        # sar_msg_ref_num (2 octets) or ussd_service_op (1 octet) with the wrong size.
        tag, size = draw(st.sampled_from([(0x020C, 2), (0x0501, 1)]))
        n = draw(st.integers(0, 8).filter(lambda k: k != size))
        data = frame(cid, body + tlv(tag, b"\x01" * n), sequence=sequence)
        return Mutant(kind, data, frozenset({Status.ESME_RINVPARLEN}))
    if kind == "tlv_overrun":
        declared = draw(st.integers(5, 0xFFFF))
        data = frame(cid, body + tlv(0x1400, b"abcd", length=declared), sequence=sequence)
        return Mutant(kind, data, frozenset({Status.ESME_RINVOPTPARSTREAM}))
    if kind == "tlv_cstring_no_nul":
        value = draw(st.binary(min_size=1, max_size=20).filter(lambda b: b"\x00" not in b))
        data = frame(cid, body + tlv(0x001E, value), sequence=sequence)  # receipted_message_id
        return Mutant(kind, data, frozenset({Status.ESME_RINVOPTPARAMVAL}))
    if kind == "sm_length_lie":
        sm = body.rfind(b"hello") if b"hello" in body else body.rfind(b"PAKIET")
        lie = bytearray(body)
        lie[sm - 1] = draw(st.integers(len(body) - sm + 1, 255))
        data = frame(cid, bytes(lie), sequence=sequence)
        return Mutant(kind, data, frozenset({Status.ESME_RINVMSGLEN}))
    # flipped_bytes: anything may happen to the body, but the header stays whole and honest.
    flip = st.tuples(st.integers(0, len(body) - 1), st.integers(0, 255))
    flips = draw(st.lists(flip, min_size=1))
    mutated = bytearray(body)
    for pos, octet in flips:
        mutated[pos] = octet
    return Mutant(kind, frame(cid, bytes(mutated), sequence=sequence))


T = TypeVar("T")


def collect(strategy: st.SearchStrategy[T], count: int) -> list[T]:
    """``count`` examples of ``strategy``, the same every run (for async tests over sockets)."""
    out: list[T] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def run(value: T) -> None:
        out.append(value)

    run()
    return out


# -- raw peers over loopback --------------------------------------------------------------------


class PeerClosed(Exception):
    """The other side closed the connection."""


@dataclass
class RawPeer:
    """One side of an SMPP connection that writes raw bytes and reads whole PDUs (undecoded too)."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    framer: Framer = field(default_factory=Framer)
    #: Requests from the other side answered while waiting for a response, by command.
    answered: Counter[str] = field(default_factory=Counter)

    @classmethod
    async def connect(cls, host: str, port: int) -> RawPeer:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def read_frame(self, within: float = READ_TIMEOUT) -> bytes:
        """The next whole PDU; ``PeerClosed`` at EOF or reset."""
        async with asyncio.timeout(within):
            while True:
                got = self.framer.next_frame()
                if got is not None:
                    return got
                try:
                    data = await self.reader.read(65536)
                except ConnectionError as exc:
                    raise PeerClosed(str(exc)) from exc
                if not data:
                    raise PeerClosed("eof")
                self.framer.feed(data)

    async def read_pdu(self, within: float = READ_TIMEOUT) -> Pdu:
        return codec.decode(await self.read_frame(within))

    async def read_response(self, sequence: int, within: float = READ_TIMEOUT) -> Pdu:
        """The response with ``sequence``, answering what a well-behaved peer must meanwhile.

        enquire_link, deliver_sm and data_sm (receipts, MO) get an OK response; an unbind is
        answered and ends the wait with ``PeerClosed``.
        """
        while True:
            pdu = await self.read_pdu(within)
            if pdu.command in ("enquire_link", "deliver_sm", "data_sm", "unbind"):
                extra = {} if pdu.command in ("enquire_link", "unbind") else {"message_id": ""}
                self.send(codec.encode(pdu.response(0, **extra)))
                self.answered[pdu.command] += 1
                if pdu.command == "unbind":
                    raise PeerClosed("unbind")
                continue
            if pdu.is_response and pdu.sequence == sequence:
                return pdu

    async def closed(self, within: float = READ_TIMEOUT) -> bool:
        """True once the other side closed (anything it still sends is drained)."""
        try:
            while True:
                await self.read_frame(within)
        except PeerClosed:
            return True
        except TimeoutError:
            return False

    async def aclose(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


class Progress:
    """A counter one can await: ``await progress.more(20)`` returns after 20 more ``add()``."""

    def __init__(self) -> None:
        self.count = 0
        self._waiters: list[tuple[int, asyncio.Event]] = []

    def add(self, n: int = 1) -> None:
        self.count += n
        for target, event in self._waiters:
            if self.count >= target:
                event.set()

    async def more(self, n: int) -> None:
        entry = (self.count + n, asyncio.Event())
        self._waiters.append(entry)
        try:
            await entry[1].wait()
        finally:
            self._waiters.remove(entry)


@dataclass(frozen=True)
class Outcome:
    """What a server did with one bad PDU: its answer (command, status) and/or a hang-up."""

    answer: tuple[str, int] | None
    closed: bool


async def probe(
    peer: RawPeer, mutant: Mutant, sequence: int, within: float = READ_TIMEOUT
) -> Outcome:
    """Send ``mutant`` (whose sequence is ``sequence``) and an enquire_link; collect the answers.

    Waits for the answer to the mutant and the enquire_link_resp, or for the hang-up.
    """
    peer.send(mutant.data + enquire_link(sequence + 1))
    answer: tuple[str, int] | None = None
    echoed = False
    try:
        while answer is None or not echoed:
            data = await peer.read_frame(within)
            name, status, seq = answer_status(data)
            if name == "enquire_link":
                peer.send(HEADER.pack(16, COMMAND_IDS["enquire_link_resp"], 0, seq))
            elif name == "enquire_link_resp" and seq == sequence + 1:
                echoed = True
            elif seq == sequence and int.from_bytes(data[4:8], "big") & 0x80000000:
                answer = (name, status)
    except PeerClosed:
        return Outcome(answer, True)
    return Outcome(answer, False)


Handler = Callable[[RawPeer], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[tuple[str, int]]:
    """A TCP server on a free loopback port running ``handler`` per connection (a fake SMSC)."""
    tasks: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = RawPeer(reader, writer)
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(peer)
        except (PeerClosed, ConnectionError):
            pass
        finally:
            tasks.discard(task)
            await peer.aclose()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    try:
        yield str(host), int(port)
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        for task in list(tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await server.wait_closed()


async def accept_bind(peer: RawPeer) -> Pdu:
    """Answer the ESME's bind with OK, as an SMSC would; returns the bind."""
    while True:
        pdu = await peer.read_pdu()
        if pdu.command.startswith("bind_"):
            peer.send(codec.encode(pdu.response(0, system_id="FAKE")))
            return pdu


def answer_status(data: bytes) -> tuple[str, int, int]:
    """(command, status, sequence) of a response frame, even a header-only error one."""
    length, command_id, status, sequence = HEADER.unpack_from(data)
    del length
    try:
        name = codec.decode(data).command
    except RemoteProtocolError:
        name = f"0x{command_id:08x}"
    return name, status, sequence


def status_name(status: int) -> str:
    try:
        return Status(status).name
    except ValueError:
        return f"0x{status:08x}"


__all__ = [
    "Mutant",
    "Outcome",
    "PeerClosed",
    "Progress",
    "RawPeer",
    "accept_bind",
    "answer_status",
    "bind",
    "collect",
    "deliver_sm",
    "enquire_link",
    "frame",
    "mutants",
    "probe",
    "raw_server",
    "status_name",
    "submit_sm",
    "tlv",
]
