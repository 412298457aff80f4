"""How fast one gateway process pushes submit_sm through one bind, against a fast sink.

    .venv/bin/python bench/smpp_link.py [--count 50000] [--window 64] [--loop auto|uvloop|asyncio]
                                        [--tls]

``--tls``: every connection is SMPP over TLS (the sink presents a certificate made at start by
trustme, the ESMEs verify it as ``smpps://…?ca=`` does).

The sink is a hand-written SMSC in a separate process (struct only: binds, answers every
submit_sm at once). Measured in the same run, against the same sink:
- ``raw``: the ceiling — a hand-written ESME pipelining pre-built submit_sm bytes through a
  window, parsing responses with struct (no codec, no objects);
- ``session``: :meth:`gateway.esme.session.SmppSession.submit_many` of one message from
  ``window`` concurrent workers (codec, window, throttle, futures), with the p50/p99 time from
  submit to submit_sm_resp;
- ``outbox``: the full reply path — MemoryOutbox → OutboxSender (text encoding, parts,
  per-subscriber order) → SmppSession.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import ssl
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.esme.session import SmppSession
from gateway.outbox.base import MemoryOutbox
from gateway.outbox.sender import OutboxSender
from gateway.settings import SmscProfile
from gateway.tls import client_context, server_context

HEADER = struct.Struct(">LLLL")
#: CPU seconds of this process per message, by run: steadier than rates on a shared machine.
CPU: dict[str, float] = {}
SUBMIT_SM, SUBMIT_SM_RESP = 0x00000004, 0x80000004


# -- the sink (its own process) -------------------------------------------------------------


class _Sink(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike
        self.transport = cast(asyncio.Transport, transport)
        self.buf = bytearray()
        self.ids = 0

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        out = []
        pos = 0
        while len(buf) - pos >= 16:
            length, command, _status, seq = HEADER.unpack_from(buf, pos)
            if len(buf) - pos < length:
                break
            pos += length
            if command in (0x9, 0x2, 0x1):  # bind_*: answer OK with a system_id
                out.append(HEADER.pack(16 + 5, command | 0x80000000, 0, seq) + b"sink\0")
            elif command == SUBMIT_SM:
                self.ids += 1
                mid = b"%x\0" % self.ids
                out.append(HEADER.pack(16 + len(mid), SUBMIT_SM_RESP, 0, seq) + mid)
            elif command in (0x15, 0x6):  # enquire_link, unbind
                out.append(HEADER.pack(16, command | 0x80000000, 0, seq))
        del buf[:pos]
        if out:
            self.transport.write(b"".join(out))


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop for ``uvloop`` (and ``auto`` when it is installed), else asyncio's."""
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if name == "uvloop":
            raise
        return None
    return uvloop.new_event_loop


def _run(coro: Coroutine[Any, Any, None], loop: str) -> None:
    with asyncio.Runner(loop_factory=_loop_factory(loop)) as runner:
        runner.run(coro)


def _run_sink(
    port_queue: multiprocessing.Queue[int], loop: str, tls: tuple[str, str] | None
) -> None:  # pragma: no cover
    context = server_context(*tls) if tls else None

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_Sink, "127.0.0.1", 0, ssl=context)
        port_queue.put(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    _run(main(), loop)


# -- the raw ceiling --------------------------------------------------------------------------


def _raw_submit(seq: int) -> bytes:
    body = (
        b"\0"  # service_type
        + b"\x00\x01"
        + b"2424\0"  # source ton/npi/addr
        + b"\x01\x01"
        + b"48600000001\0"  # dest ton/npi/addr
        + b"\x00\x00\x00"  # esm_class, protocol_id, priority
        + b"\0\0"  # schedule, validity
        + b"\x00\x00\x00\x00"  # registered_delivery, replace, data_coding, sm_default_msg_id
        + b"\x0bHello world"
    )
    return HEADER.pack(16 + len(body), SUBMIT_SM, 0, seq) + body


class _RawEsme(asyncio.Protocol):
    def __init__(self, count: int, window: int, done: asyncio.Future[float]) -> None:
        self.count, self.window, self.done = count, window, done
        self.sent = self.acked = 0
        self.buf = bytearray()
        self.template = _raw_submit(0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike
        self.transport = cast(asyncio.Transport, transport)
        bind = b"x\0y\0\0\x34\0\0\0"  # system_id, password, system_type, version, ton, npi, range
        self.transport.write(HEADER.pack(16 + len(bind), 0x9, 0, 1) + bind)

    def _pump(self) -> None:
        out = []
        tpl = self.template
        while self.sent < self.count and self.sent - self.acked < self.window:
            self.sent += 1
            out.append(tpl[:12] + struct.pack(">L", self.sent + 1) + tpl[16:])
        if out:
            self.transport.write(b"".join(out))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        while len(buf) - pos >= 16:
            length, command, _status, _seq = HEADER.unpack_from(buf, pos)
            if len(buf) - pos < length:
                break
            pos += length
            if command == SUBMIT_SM_RESP:
                self.acked += 1
            elif command == 0x80000009:
                self.started = time.perf_counter()
        del buf[:pos]
        if self.acked >= self.count and not self.done.done():
            self.done.set_result(time.perf_counter() - self.started)
        else:
            self._pump()


async def bench_raw(port: int, count: int, window: int, ca: str = "") -> float:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[float] = loop.create_future()
    context: ssl.SSLContext | None = client_context(ca) if ca else None
    transport, _ = await loop.create_connection(
        lambda: _RawEsme(count, window, done),
        "127.0.0.1",
        port,
        ssl=context,
        server_hostname="127.0.0.1" if context else None,
    )
    elapsed = await asyncio.wait_for(done, 120)
    transport.close()
    return count / elapsed


# -- the gateway ------------------------------------------------------------------------------


def _profile(port: int, window: int, ca: str = "") -> SmscProfile:
    return SmscProfile(
        "bench",
        "bench",
        "127.0.0.1",
        port,
        window=window,
        response_timeout=30.0,
        tls=bool(ca),
        ca=ca,
    )


def _messages(count: int) -> list[dict[str, Any]]:
    """Distinct submit_sm params (destination and text differ), built before the clock starts:
    every submit is encoded afresh, as the outbox's are."""
    return [
        {
            "source_addr": "2424",
            "destination_addr": f"486{n % 100_000_000:08d}",
            "dest_addr_ton": 1,
            "dest_addr_npi": 1,
            "data_coding": 0,
            "short_message": b"Hello world %d" % n,
        }
        for n in range(count)
    ]


async def bench_session(
    port: int, count: int, window: int, ca: str = ""
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    per_worker = count // window
    messages = _messages(per_worker * window)
    async with SmppSession(_profile(port, window, ca)) as session:
        assert await session.wait_bound(10)

        async def worker(first: int) -> None:
            for n in range(first, first + per_worker):
                t0 = time.perf_counter()
                [result] = await session.submit_many(([messages[n]],))
                assert not isinstance(result, Exception)
                latencies.append(time.perf_counter() - t0)

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker(w * per_worker) for w in range(window)))
        elapsed = time.perf_counter() - started
        CPU["submit"] = (time.process_time() - cpu) / (per_worker * window)
    return per_worker * window / elapsed, latencies


async def bench_batches(
    port: int, count: int, window: int, ca: str = ""
) -> tuple[float, list[float]]:
    """``submit_many`` from a few workers, ``window`` messages a batch: the outbox's way."""
    workers = 4
    rounds = max(1, count // (window * workers))
    messages = _messages(rounds * workers * window)
    batches = [
        [[params] for params in messages[b * window : (b + 1) * window]]
        for b in range(rounds * workers)
    ]
    latencies: list[float] = []
    async with SmppSession(_profile(port, window, ca)) as session:
        assert await session.wait_bound(10)

        async def worker(first: int) -> None:
            for batch in batches[first : first + rounds]:
                t0 = time.perf_counter()
                results = await session.submit_many(batch)
                latencies.append(time.perf_counter() - t0)
                assert all(not isinstance(r, Exception) for r in results)

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker(w * rounds) for w in range(workers)))
        elapsed = time.perf_counter() - started
        CPU["submit_many"] = (time.process_time() - cpu) / (rounds * workers * window)
    return rounds * workers * window / elapsed, latencies


async def bench_outbox(port: int, count: int, window: int, ca: str = "") -> float:
    outbox = MemoryOutbox()
    for n in range(count):
        await outbox.put(f"487{n % 10000:08d}", "Twoj pakiet: 100 min, 50 SMS", {"channel": "sms"})
    async with SmppSession(_profile(port, window, ca)) as session:
        assert await session.wait_bound(10)
        sender = OutboxSender(outbox, session)
        started, cpu = time.perf_counter(), time.process_time()
        sent = await sender.drain_once(600)
        elapsed = time.perf_counter() - started
        CPU["outbox"] = (time.process_time() - cpu) / count
    assert sent == count, sent
    return count / elapsed


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _certificates(directory: str) -> tuple[str, str, str]:
    """A CA and a certificate for 127.0.0.1 it signed: (ca, cert, key) files."""
    import trustme  # a dev dependency: only --tls needs it

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    paths = tuple(os.path.join(directory, name) for name in ("ca.pem", "cert.pem", "key.pem"))
    ca.cert_pem.write_to_path(paths[0])
    leaf.cert_chain_pems[0].write_to_path(paths[1])
    leaf.private_key_pem.write_to_path(paths[2])
    return paths[0], paths[1], paths[2]


async def main(count: int, window: int, outbox_count: int, loop: str, tls: bool) -> None:
    with tempfile.TemporaryDirectory() as directory:
        ca, cert, key = _certificates(directory) if tls else ("", "", "")
        ctx = multiprocessing.get_context("spawn")
        ports: multiprocessing.Queue[int] = ctx.Queue()
        sink_tls = (cert, key) if tls else None
        sink = ctx.Process(target=_run_sink, args=(ports, loop, sink_tls), daemon=True)
        sink.start()
        try:
            port = ports.get(timeout=30)
            await bench_raw(port, min(count, 20_000), window, ca)  # warm-up
            raw = await bench_raw(port, count, window, ca)
            rate, lat = await bench_session(port, count, window, ca)
            batched, batch_lat = await bench_batches(port, count, window, ca)
            box = await bench_outbox(port, outbox_count, window, ca)
        finally:
            sink.terminate()
            sink.join(5)
    link = "SMPP over TLS" if tls else "clear-text SMPP"
    print(f"smpp_link: {count} submit_sm, window {window}, sink in its own process, {link}")
    loop_name = type(asyncio.get_running_loop()).__module__.split(".")[0]
    print(
        f"  cpus: {os.cpu_count()}, python {sys.version.split()[0]}, event loop {loop_name}"
        f" (both processes), load average {os.getloadavg()[0]:.1f}"
    )
    print(f"  raw hand-written ESME (ceiling): {raw:10,.0f} submit_sm/s")
    print(
        f"  submit_many, one message:        {rate:10,.0f} submit_sm/s  ({rate / raw:.0%} of raw)"
    )
    print(
        f"  time to submit_sm_resp:          p50 {statistics.median(lat) * 1000:.2f} ms"
        f"  p99 {pct(lat, 0.99) * 1000:.2f} ms"
    )
    print(
        f"  SmppSession.submit_many:         {batched:10,.0f} submit_sm/s"
        f"  ({batched / raw:.0%} of raw; batch of {window}"
        f" p99 {pct(batch_lat, 0.99) * 1000:.2f} ms)"
    )
    print(f"  outbox → sender → SmppSession:   {box:10,.0f} messages/s ({outbox_count} messages)")
    best = max(rate, batched)
    print(
        f"  target ≥ 50,000 submit_sm/s per process: {'met' if best >= 50_000 else 'missed'}"
        f" ({best:,.0f}/s, {best / raw:.0%} of the raw ceiling)"
    )
    print(
        "  CPU per message in this process:  "
        + ", ".join(f"{name} {secs * 1e6:.1f} µs" for name, secs in CPU.items())
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--outbox-count", type=int, default=10_000)
    parser.add_argument("--tls", action="store_true", help="SMPP over TLS on every connection")
    parser.add_argument(
        "--loop",
        choices=("auto", "uvloop", "asyncio"),
        default="auto",
        help="event loop of both processes (auto: uvloop when installed)",
    )
    args = parser.parse_args()
    _run(main(args.count, args.window, args.outbox_count, args.loop, args.tls), args.loop)
