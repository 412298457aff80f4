"""One SMPP connection to an SMSC, seen from the ESME side, re-established until closed.

Theory of operation. An :class:`SmppLink` is one TCP connection driven by the sans-I/O
:class:`gateway.codec.SmppConnection`; it connects, binds, and keeps reconnecting until closed:
- **Reconnect** waits an exponential back-off with jitter before every attempt (never a tight
  loop); the streak resets only after a connection stayed bound for ``stable_after`` seconds.
- **Window**: at most ``profile.window`` requests await their response; a request waits for a
  free slot, so the window is always full while there is work.
- **Response timeout**: each request has one; a timed-out request fails with a *temporary*
  :class:`SubmitError` (the outbox sends it again) and is remembered so its late response is
  recognised. ``dead_after`` consecutive timeouts mean the link is dead: it is dropped and
  re-established.
- **enquire_link** goes out when nothing was received for ``profile.enquire_link`` seconds; the
  SMSC's are answered at once. deliver_sm / data_sm are handed to ``on_inbound`` (which returns
  the command_status to answer) and answered; malformed PDUs are answered with the codec's
  ``nack_for``; a fatal framing error closes the connection after the nack.
- **Shutdown** stops new requests, waits for in-flight ones, sends unbind, closes.

:mod:`gateway.session` builds the bind the rest of the gateway sees on top of one or two links.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from backend.errors import Idea24Error
from gateway import codec
from gateway.errors import LocalProtocolError, ProtocolError
from gateway.pdu import Pdu, Status
from gateway.settings import SmscProfile
from gateway.throttle import Backoff

log = logging.getLogger(__name__)

#: Called with each deliver_sm / data_sm; returns the command_status to answer with.
InboundHandler = Callable[[Pdu], Awaitable[int]]
LinkMode = Literal["trx", "tx", "rx"]

_BIND_COMMANDS: Mapping[str, str] = {
    "trx": "bind_transceiver",
    "tx": "bind_transmitter",
    "rx": "bind_receiver",
}


class SubmitError(Idea24Error):
    """A submit did not go through. ``temporary``: the same parts may be sent again later.

    ``accepted`` maps the index of each part the SMSC did accept to its message id, so a retry
    can send only the rest.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = Status.ESME_RUNKNOWNERR,
        temporary: bool,
        accepted: Mapping[int, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.temporary = temporary
        self.accepted: dict[int, str] = dict(accepted or {})


class LinkDown(SubmitError):
    """The link is not bound or was lost while the request was outstanding."""

    def __init__(self, message: str = "link not bound") -> None:
        super().__init__(message, status=Status.ESME_RUNKNOWNERR, temporary=True)


class ResponseTimeout(SubmitError):
    def __init__(self, command: str, timeout: float) -> None:
        super().__init__(
            f"no {command}_resp within {timeout:g}s", status=Status.ESME_RUNKNOWNERR, temporary=True
        )


class _Overdue(Exception):
    """Internal: the sweeper's verdict on one request."""


class _BatchWait:
    """Counts the outstanding requests of one ``request_many``; whoever completes a request's
    future calls :meth:`one_done` at once (no callback scheduled per PDU), which frees its
    window slot and wakes the batch when the last one is in."""

    __slots__ = ("future", "link", "waiting")

    def __init__(self, link: SmppLink) -> None:
        self.link = link
        self.waiting = 0
        self.future: asyncio.Future[None] | None = None

    def one_done(self) -> None:
        self.link._release_slot()
        self.waiting -= 1
        if self.waiting == 0 and self.future is not None and not self.future.done():
            self.future.set_result(None)


@dataclass(slots=True)
class LinkStats:
    """Plain counters; the app exports them to Prometheus."""

    connects: int = 0
    bind_failures: int = 0
    requests: int = 0
    timeouts: int = 0
    late_responses: int = 0
    nacks_sent: int = 0
    enquire_links_sent: int = 0
    enquire_links_answered: int = 0
    inbound: int = 0


class _Protocol(asyncio.Protocol):
    """One TCP connection. Writes made in one loop iteration leave in one ``send`` call: with a
    full window that is dozens of PDUs per system call instead of one each."""

    def __init__(self, link: SmppLink) -> None:
        self._link = link
        self._loop = asyncio.get_running_loop()
        self.lost: asyncio.Future[None] = self._loop.create_future()
        self.transport: asyncio.Transport | None = None
        self._out: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def write(self, data: bytes) -> None:
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
        self._link._on_data(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        self._link._on_lost(self)


class SmppLink:
    """One TCP connection and its bind, re-established until :meth:`close`."""

    def __init__(
        self,
        profile: SmscProfile,
        mode: LinkMode = "trx",
        on_inbound: InboundHandler | None = None,
        *,
        backoff: Backoff | None = None,
        connect_timeout: float = 5.0,
        stable_after: float = 10.0,
        dead_after: int = 3,
    ) -> None:
        self.profile = profile
        self.mode = mode
        self.name = f"{profile.name}/{mode}"
        self._on_inbound = on_inbound
        self._backoff = backoff or Backoff(0.5, 30.0)
        self._connect_timeout = connect_timeout
        self._stable_after = stable_after
        self._dead_after = dead_after
        self._window_size = max(1, profile.window)
        self._in_window = 0
        self._window_open = asyncio.Event()
        self._window_open.set()
        #: sequence → (future, deadline); a sweeper fails the overdue (cheaper than a timer each).
        self._pending: dict[int, tuple[asyncio.Future[Pdu], float, _BatchWait | None]] = {}
        self._late: set[int] = set()
        self._conn: codec.SmppConnection | None = None
        self._proto: _Protocol | None = None
        self._bound = asyncio.Event()
        self._closing = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._last_rx = time.monotonic()
        self._consecutive_timeouts = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: asyncio.Task[None] | None = None
        self.stats = LinkStats()

    # -- public -----------------------------------------------------------------------------

    @property
    def bound(self) -> bool:
        return self._bound.is_set()

    @property
    def in_flight(self) -> int:
        """Requests holding a window slot now."""
        return self._in_window

    def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name=f"smpp-link {self.name}")

    async def wait_bound(self, within: float | None = None) -> bool:
        try:
            await asyncio.wait_for(self._bound.wait(), within)
        except TimeoutError:
            return False
        return True

    async def request(self, pdu: Pdu, response_timeout: float | None = None) -> Pdu:
        """Send a request through the window and return its response (any status).

        Raises :class:`LinkDown` when not bound (or the link drops meanwhile) and
        :class:`ResponseTimeout` when no response came in time.
        """
        if self._closing.is_set():
            raise LinkDown("link is shutting down")
        if self._in_window < self._window_size:  # room: no coroutine for the slot
            self._in_window += 1
        else:
            await self._acquire_slots(1)
        try:
            if not self._bound.is_set() or self._closing.is_set():
                raise LinkDown()
            seq, fut, wait = self._send_request(pdu, response_timeout)
            try:
                await fut
            except asyncio.CancelledError:  # the caller gave up: forget the request
                self._forget(seq, fut)
                raise
            except Exception:  # noqa: S110 - the future's error becomes a SubmitError below
                pass
            return self._result(pdu, seq, fut, wait)
        finally:
            self._release_slot()

    async def request_many(
        self, pdus: Sequence[Pdu], response_timeout: float | None = None
    ) -> list[Pdu | SubmitError]:
        """Send requests in order, as many at a time as the window has room for; one outcome
        per request (a response of any status, or the :class:`SubmitError` it met).

        One coroutine for the whole batch: far cheaper per PDU than :meth:`request` each.
        """
        outcomes: list[Pdu | SubmitError | None] = [None] * len(pdus)
        sent: list[tuple[int, int, asyncio.Future[Pdu], float]] = []
        batch = _BatchWait(self)
        index = 0
        while index < len(pdus):
            if self._closing.is_set() or not self._bound.is_set():
                for rest in range(index, len(pdus)):
                    outcomes[rest] = LinkDown()
                break
            room = await self._acquire_slots(len(pdus) - index)
            for offset in range(room):
                try:
                    seq, fut, wait = self._send_request(
                        pdus[index + offset], response_timeout, batch
                    )
                except SubmitError as exc:
                    self._release_slot()
                    outcomes[index + offset] = exc
                    continue
                batch.waiting += 1
                sent.append((index + offset, seq, fut, wait))
            index += room
        if batch.waiting:
            batch.future = asyncio.get_running_loop().create_future()
            try:
                await batch.future
            except asyncio.CancelledError:
                for _, seq, fut, _ in sent:
                    if not fut.done():
                        self._forget(seq, fut)
                        fut.cancel()
                        batch.one_done()
                raise
        for position, seq, fut, wait in sent:  # every future is done: no awaiting per PDU
            try:
                outcomes[position] = self._result(pdus[position], seq, fut, wait)
            except SubmitError as exc:
                outcomes[position] = exc
        return [o if o is not None else LinkDown() for o in outcomes]

    async def _acquire_slots(self, want: int) -> int:
        """Wait for room in the window; take up to ``want`` slots (at least one)."""
        while self._in_window >= self._window_size:
            self._window_open.clear()
            await self._window_open.wait()
        room = min(want, self._window_size - self._in_window)
        self._in_window += room
        return room

    def _release_slot(self) -> None:
        self._in_window -= 1
        if self._in_window < self._window_size:
            self._window_open.set()

    async def close(self, drain_timeout: float = 5.0) -> None:
        """Stop taking requests, let in-flight ones finish, unbind, disconnect."""
        self._closing.set()
        if self._pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), drain_timeout)
        if self._bound.is_set() and self._proto is not None:
            with contextlib.suppress(SubmitError):
                await self._exchange(Pdu("unbind"), min(2.0, self.profile.response_timeout))
        self._bound.clear()
        if self._proto is not None:
            self._proto.close()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- connection loop ---------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        first = True
        while not self._closing.is_set():
            if not first:
                delay = self._backoff.next_delay()
                log.info("smpp reconnect in %.2fs", delay, extra={"bind": self.name})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), delay)
                if self._closing.is_set():
                    return
            first = False
            try:
                _, proto = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: _Protocol(self), self.profile.host, self.profile.port
                    ),
                    self._connect_timeout,
                )
            except (OSError, TimeoutError) as exc:
                log.warning("smpp connect failed: %s", exc, extra={"bind": self.name})
                continue
            self.stats.connects += 1
            self._proto = proto
            self._conn = codec.SmppConnection("esme")
            self._last_rx = time.monotonic()
            self._consecutive_timeouts = 0
            started = time.monotonic()
            sweeper = asyncio.create_task(self._sweep())
            try:
                if await self._bind():
                    self._bound.set()
                    log.info("smpp bound", extra={"bind": self.name})
                    keepalive = asyncio.create_task(self._keepalive(proto))
                    try:
                        await proto.lost
                    finally:
                        keepalive.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await keepalive
            finally:
                self._bound.clear()
                sweeper.cancel()
                proto.close()
                self._fail_pending(proto)
            if time.monotonic() - started >= self._stable_after:
                self._backoff.reset()
            if not self._closing.is_set():
                log.warning("smpp link lost", extra={"bind": self.name})

    async def _bind(self) -> bool:
        p = self.profile
        pdu = Pdu(
            _BIND_COMMANDS[self.mode],
            params={
                "system_id": p.system_id,
                "password": p.password,
                "system_type": p.system_type,
                "interface_version": 0x34,
                "addr_ton": p.source_ton,
                "addr_npi": p.source_npi,
                "address_range": p.address_range,
            },
        )
        try:
            resp = await self._exchange(pdu, p.response_timeout)
        except SubmitError as exc:
            log.warning("smpp bind got no answer: %s", exc, extra={"bind": self.name})
            return False
        if resp.status != Status.ESME_ROK:
            self.stats.bind_failures += 1
            log.error(
                "smpp bind refused",
                extra={"bind": self.name, "status": status_name(resp.status)},
            )
            if self._proto is not None:
                self._proto.close()
            return False
        return True

    async def _keepalive(self, proto: _Protocol) -> None:
        interval = self.profile.enquire_link
        if interval <= 0:
            return
        while True:
            idle = time.monotonic() - self._last_rx
            if idle < interval:
                await asyncio.sleep(interval - idle)
                continue
            self.stats.enquire_links_sent += 1
            try:
                await self._exchange(Pdu("enquire_link"), self.profile.response_timeout)
            except SubmitError:
                log.warning(
                    "smpp enquire_link unanswered: dropping link", extra={"bind": self.name}
                )
                if proto.transport is not None:
                    proto.transport.abort()
                return
            # An answered enquire_link counts as traffic (_last_rx moved on).

    # -- requests and responses --------------------------------------------------------------

    async def _exchange(self, pdu: Pdu, response_timeout: float | None) -> Pdu:
        seq, fut, wait = self._send_request(pdu, response_timeout)
        return await self._outcome(pdu, seq, fut, wait)

    def _send_request(
        self, pdu: Pdu, response_timeout: float | None, batch: _BatchWait | None = None
    ) -> tuple[int, asyncio.Future[Pdu], float]:
        conn, proto = self._conn, self._proto
        if conn is None or proto is None or proto.transport is None or proto.lost.done():
            raise LinkDown()
        seq = conn.next_sequence()
        try:  # numbered here: cheaper than letting the codec copy the Pdu with dataclasses.replace
            data = conn.send(Pdu(pdu.command, seq, pdu.status, pdu.params, pdu.extra_tlvs))
        except LocalProtocolError as exc:
            if exc.status == Status.ESME_RINVBNDSTS:
                raise LinkDown(str(exc)) from exc
            raise SubmitError(str(exc), status=exc.status, temporary=False) from exc
        wait = self.profile.response_timeout if response_timeout is None else response_timeout
        fut: asyncio.Future[Pdu] = proto._loop.create_future()
        self._pending[seq] = (fut, time.monotonic() + wait, batch)
        self._idle.clear()
        self.stats.requests += 1
        proto.write(data)
        return seq, fut, wait

    async def _outcome(self, pdu: Pdu, seq: int, fut: asyncio.Future[Pdu], wait: float) -> Pdu:
        try:
            await fut
        except asyncio.CancelledError:  # the caller gave up: forget the request
            self._forget(seq, fut)
            raise
        except Exception:  # noqa: S110 - the future's error is turned into a SubmitError below
            pass
        return self._result(pdu, seq, fut, wait)

    def _result(self, pdu: Pdu, seq: int, fut: asyncio.Future[Pdu], wait: float) -> Pdu:
        """The response of a finished request, or the SubmitError it ended with."""
        unanswered = seq in self._pending
        self._forget(seq, fut)
        error = fut.exception()
        if error is None:
            return fut.result()
        if isinstance(error, _Overdue):
            self.stats.timeouts += 1
            if unanswered:
                self._late.add(seq)
            self._consecutive_timeouts += 1
            proto = self._proto
            if (
                self._consecutive_timeouts >= self._dead_after
                and proto is not None
                and proto.transport is not None
            ):
                log.warning("smpp responses stopped: dropping link", extra={"bind": self.name})
                proto.transport.abort()
            raise ResponseTimeout(pdu.command, wait)
        raise error

    def _forget(self, seq: int, fut: asyncio.Future[Pdu]) -> None:
        entry = self._pending.get(seq)
        if entry is not None and entry[0] is fut:
            del self._pending[seq]
        if not self._pending:
            self._idle.set()

    async def _sweep(self) -> None:
        """Fail requests whose response is overdue; runs while a connection is up."""
        tick = max(0.01, min(0.5, self.profile.response_timeout / 8))
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for fut, deadline, batch in list(self._pending.values()):
                if deadline <= now and not fut.done():
                    fut.set_exception(_Overdue())
                    if batch is not None:
                        batch.one_done()

    def _fail_pending(self, proto: _Protocol) -> None:
        if proto is not self._proto:
            return
        for fut, _, batch in list(self._pending.values()):
            if not fut.done():
                fut.set_exception(LinkDown("link lost with the request outstanding"))
                if batch is not None:
                    batch.one_done()
        self._late.clear()

    def _write(self, proto: _Protocol, data: bytes) -> None:
        proto.write(data)

    def _answer(self, proto: _Protocol, conn: codec.SmppConnection, pdu: Pdu) -> None:
        """Send a response; one the codec refuses (connection closed) is dropped with a log."""
        try:
            self._write(proto, conn.send(pdu))
        except LocalProtocolError as exc:
            log.warning("smpp cannot answer %s: %s", pdu.command, exc, extra={"bind": self.name})

    def _on_lost(self, proto: _Protocol) -> None:
        self._bound.clear()
        self._fail_pending(proto)

    def _on_data(self, proto: _Protocol, data: bytes) -> None:
        conn = self._conn
        if conn is None or proto is not self._proto:
            return
        self._last_rx = time.monotonic()
        conn.receive_data(data)
        while True:
            try:
                event = conn.next_event()
            except ProtocolError as exc:  # framing lost: nothing more can be read
                event = exc
            if event is None:
                return
            if isinstance(event, ProtocolError):
                self.stats.nacks_sent += 1
                log.warning("smpp malformed pdu: %s", event, extra={"bind": self.name})
                with contextlib.suppress(ProtocolError):
                    self._write(proto, conn.nack_for(event))
                if event.fatal:
                    proto.close()
                    return
                continue
            self._dispatch(proto, conn, event)

    def _dispatch(self, proto: _Protocol, conn: codec.SmppConnection, pdu: Pdu) -> None:
        if pdu.is_response:
            self._consecutive_timeouts = 0
            entry = self._pending.pop(pdu.sequence, None)
            if entry is not None:
                if not entry[0].done():
                    entry[0].set_result(pdu)
                    if entry[2] is not None:
                        entry[2].one_done()
                else:  # already judged overdue, its caller not yet told
                    self.stats.late_responses += 1
                if not self._pending:
                    self._idle.set()
            elif pdu.sequence in self._late:
                self._late.discard(pdu.sequence)
                self.stats.late_responses += 1
                log.warning(
                    "smpp late %s", pdu.command, extra={"bind": self.name, "seq": pdu.sequence}
                )
            else:
                log.warning(
                    "smpp unexpected %s",
                    pdu.command,
                    extra={"bind": self.name, "seq": pdu.sequence},
                )
            return
        if pdu.command == "enquire_link":
            self.stats.enquire_links_answered += 1
            self._answer(proto, conn, pdu.response())
        elif pdu.command in ("deliver_sm", "data_sm"):
            self.stats.inbound += 1
            task = asyncio.create_task(self._inbound(proto, conn, pdu))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif pdu.command == "unbind":
            log.info("smpp unbind from the SMSC", extra={"bind": self.name})
            self._bound.clear()
            self._answer(proto, conn, pdu.response())
            proto.close()
        elif pdu.command == "alert_notification":
            return  # no response defined
        else:
            self._answer(proto, conn, Pdu("generic_nack", pdu.sequence, Status.ESME_RINVCMDID))

    async def _inbound(self, proto: _Protocol, conn: codec.SmppConnection, pdu: Pdu) -> None:
        status: int = Status.ESME_ROK
        if self._on_inbound is not None:
            try:
                status = await self._on_inbound(pdu)
            except Exception:  # a handler bug must not kill the link; the SMSC will retry
                log.exception("smpp inbound handler failed", extra={"bind": self.name})
                status = Status.ESME_RX_T_APPN
        if proto is self._proto and not proto.lost.done():
            self._answer(proto, conn, pdu.response(status, message_id=""))


def status_name(status: int) -> str:
    try:
        return Status(status).name
    except ValueError:
        return f"0x{status:08X}"
