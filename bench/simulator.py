"""How many submit_sm/s one simulator process accepts, each with its delivery receipt.

    .venv/bin/python bench/simulator.py [--messages 100000] [--window 256] [--loop uvloop]

Two runs with the same pipelined client (its own process, a window of outstanding submits):
1. "raw socket ceiling": a server that parses only the 16-octet header and writes back a canned
   submit_sm_resp and deliver_sm per submit — the cost of the sockets and the loop alone;
2. "simulator": the real SMSC (``simulator.smsc.Smsc``) in its own process, decoding each
   submit_sm with the shared codec, recording it for the handset, answering and sending a
   receipt (registered_delivery=1) that the client acknowledges with deliver_sm_resp.
A run ends when every submit has its submit_sm_resp and its receipt; the rate is messages
divided by the time from the first submit to the last receipt. The server process also reports
the CPU time it spent per message (less sensitive to a busy machine than the rate). Both server
processes run on uvloop when it is importable, else on asyncio's loop (``--loop`` chooses).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import multiprocessing as mp
import struct
import sys
import time
from collections.abc import Callable, Coroutine
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.smpp.codec import encode
from gateway.smpp.pdu import Pdu

HEADER = struct.Struct(">LLLL")
SUBMIT_SM, SUBMIT_SM_RESP, DELIVER_SM, DELIVER_SM_RESP = 0x04, 0x80000004, 0x05, 0x80000005
BIND_TRX_RESP = 0x80000009


def _submit_template() -> bytes:
    return encode(
        Pdu(
            "submit_sm",
            1,
            0,
            {
                "source_addr": "2424",
                "source_addr_ton": 5,
                "destination_addr": "48600000001",
                "dest_addr_ton": 1,
                "dest_addr_npi": 1,
                "registered_delivery": 1,
                "short_message": b"Twoje saldo: 12,50 zl. Dziekujemy!",
            },
        )
    )


class Client(asyncio.Protocol):
    """Pipelined ESME: keeps ``window`` submits outstanding, acks receipts, times the run."""

    def __init__(self, total: int, window: int, done: asyncio.Future[float]) -> None:
        self.total, self.window, self.done = total, window, done
        self.buf = bytearray()
        self.sent = self.acked = self.receipts = self.failed = 0
        self.submit = bytearray(_submit_template())
        self.bound = False
        self.start = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike
        self.transport = cast(asyncio.Transport, transport)
        bind = Pdu("bind_transceiver", 1, 0, {"system_id": "idea24", "password": "idea24"})
        self.transport.write(encode(bind))

    def _submits(self, n: int, out: list[bytes]) -> None:
        submit = self.submit
        for _ in range(min(n, self.total - self.sent)):
            self.sent += 1
            struct.pack_into(">L", submit, 12, self.sent + 1)
            out.append(bytes(submit))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        out: list[bytes] = []
        pos = 0
        while len(buf) - pos >= 16:
            length, command, status, seq = HEADER.unpack_from(buf, pos)
            if len(buf) - pos < length:
                break
            pos += length
            if command == SUBMIT_SM_RESP:
                self.acked += 1
                if status:
                    self.failed += 1
            elif command == DELIVER_SM:
                self.receipts += 1
                out.append(HEADER.pack(17, DELIVER_SM_RESP, 0, seq) + b"\x00")
            elif command == BIND_TRX_RESP:
                self.start = time.perf_counter()
                self._submits(self.window, out)
        del buf[:pos]
        outstanding = self.sent - self.acked
        if self.start and outstanding < self.window:
            self._submits(self.window - outstanding, out)
        if out:
            self.transport.write(b"".join(out))
        if self.receipts >= self.total and self.acked >= self.total and not self.done.done():
            self.done.set_result(time.perf_counter() - self.start)


async def _client(port: int, total: int, window: int) -> tuple[float, int]:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[float] = loop.create_future()
    transport, proto = await loop.create_connection(
        lambda: Client(total, window, done), "127.0.0.1", port
    )
    elapsed = await asyncio.wait_for(done, 300)
    transport.close()
    return elapsed, proto.failed


class RawServer(asyncio.Protocol):
    """The ceiling: header-only parsing, canned answers, same bytes on the wire as the SMSC."""

    RESP = HEADER.pack(16 + 11, SUBMIT_SM_RESP, 0, 0) + b"0123456789\x00"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike
        self.transport = cast(asyncio.Transport, transport)
        self.buf = bytearray()
        self.receipt = bytearray(_receipt_template())
        self.seq = 0

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        out: list[bytes] = []
        pos = 0
        while len(buf) - pos >= 16:
            length, command, _status, seq = HEADER.unpack_from(buf, pos)
            if len(buf) - pos < length:
                break
            pos += length
            if command == SUBMIT_SM:
                resp = bytearray(self.RESP)
                struct.pack_into(">L", resp, 12, seq)
                out.append(bytes(resp))
                self.seq += 1
                struct.pack_into(">L", self.receipt, 12, self.seq)
                out.append(bytes(self.receipt))
            elif command == 0x09:
                out.append(HEADER.pack(16 + 4, BIND_TRX_RESP, 0, seq) + b"raw\x00")
        del buf[:pos]
        if out:
            self.transport.write(b"".join(out))


def _receipt_template() -> bytes:
    text = b"id:0123456789 sub:001 dlvrd:001 submit date:2601010000 done date:2601010000"
    text += b" stat:DELIVRD err:000 text:Twoje saldo: 12,50"
    params = {
        "source_addr": "48600000001",
        "destination_addr": "2424",
        "esm_class": 4,
        "short_message": text,
        "receipted_message_id": "0123456789",
        "message_state": 2,
    }
    return encode(Pdu("deliver_sm", 1, 0, params))


def default_loop() -> str:
    return "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"


def _run_loop(loop: str, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    if loop == "uvloop":
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


def _serve(kind: str, loop_kind: str, ports: mp.Queue[float], stop: MpEvent) -> None:
    """Serve until ``stop``; put the port, then the CPU seconds spent while serving."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        if kind == "raw":
            server = await loop.create_server(RawServer, "127.0.0.1", 0)
            ports.put(server.sockets[0].getsockname()[1])
            cpu = time.process_time()
            await asyncio.to_thread(stop.wait)
            ports.put(time.process_time() - cpu)
            server.close()
            return
        from simulator.smsc import Smsc

        smsc = Smsc(window=1024)
        _host, port = await smsc.start("127.0.0.1", 0)
        ports.put(port)
        cpu = time.process_time()
        await asyncio.to_thread(stop.wait)
        ports.put(time.process_time() - cpu)
        await smsc.stop(grace=0.1)

    _run_loop(loop_kind, main)


def run(kind: str, total: int, window: int, loop: str) -> tuple[float, float, int]:
    """Messages per second, server CPU microseconds per message, submits refused."""
    ctx = mp.get_context("spawn")
    ports: mp.Queue[float] = ctx.Queue()
    stop = ctx.Event()
    proc = ctx.Process(target=_serve, args=(kind, loop, ports, stop))
    proc.start()
    try:
        port = int(ports.get(timeout=30))
        elapsed, failed = asyncio.run(_client(port, total, window))
        stop.set()
        cpu = ports.get(timeout=30)
    finally:
        stop.set()
        proc.join(10)
        if proc.is_alive():
            proc.terminate()
    return total / elapsed, cpu / total * 1e6, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default=default_loop())
    args = parser.parse_args()
    if args.window < 64:
        parser.error("--window: at least 64 (a pipelined client, as the target is stated)")
    print(
        f"{args.messages} submit_sm, window {args.window}, receipt for each, servers on {args.loop}"
    )
    for kind, label in (("raw", "raw socket ceiling"), ("simulator", "simulator")):
        run(kind, min(args.messages, 20_000), args.window, args.loop)  # warm-up
        rate, cpu, failed = run(kind, args.messages, args.window, args.loop)
        note = f"  ({failed} refused)" if failed else ""
        print(
            f"{label:>20}: {rate:>9,.0f} submit_sm/s with receipts,"
            f" server CPU {cpu:5.1f} µs/msg{note}",
            flush=True,
        )


if __name__ == "__main__":
    main()
