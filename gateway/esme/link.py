"""One SMPP connection to an SMSC, seen from the ESME side, re-established until closed.

Theory of operation. An :class:`SmppLink` is one TCP connection driven by the sans-I/O
:class:`gateway.smpp.codec.SmppConnection`; it connects, binds, and keeps reconnecting until closed:
- **Reconnect** waits an exponential back-off with jitter before every attempt (never a tight
  loop); the streak resets only after a connection stayed bound for ``stable_after`` seconds.
- **Window**: at most ``profile.window`` requests await their response; a request waits for a
  free slot, so the window is always full while there is work.
- **Response timeout**: each request has one; a timed-out request fails with a *temporary*
  :class:`SubmitError` (the outbox sends it again) and is remembered for ``late_grace`` seconds
  (bounded by ``max_late`` entries, forgotten when the connection closes: a response can only
  come on the connection that carried the request). A late response is handed to the caller's
  ``on_late(index, (status, message_id))``; an entry that expires or dies with the connection
  is reported as ``on_late(index, None)``, so a caller holding a retry knows no answer will
  come. ``dead_after`` consecutive timeouts with nothing at all received for a response timeout
  mean the link is dead: it is dropped and re-established. A peer that still sends (MO,
  enquire_link, other responses) is slow, not dead: dropping it would turn every late answer
  into a lost one, and every accepted submit into a duplicate.
- **enquire_link** goes out when nothing was received for ``profile.enquire_link`` seconds; the
  SMSC's are answered at once. deliver_sm / data_sm are handed to ``on_inbound`` (which returns
  the command_status to answer) and answered; malformed PDUs are answered with the codec's
  ``nack_for``; a fatal framing error closes the connection after the nack.
- **Shutdown** stops new requests, waits for in-flight ones, sends unbind, closes.
- **TLS** (``smpps://``): every connection attempt builds its context from the files named in
  the profile (:func:`gateway.tls.client_context`), so renewed certificates apply at the next
  reconnect. A failed handshake, a peer that ends the connection with a TLS alert, or one that
  closes it after the handshake without a byte of SMPP (TLS 1.3 servers check a client
  certificate after the client has finished its handshake, often refusing without an alert) is
  a failed bind: logged with its reason (:func:`gateway.tls.explain`), counted in
  ``stats.tls_failures``, retried after the back-off, and never retried in clear text.

:mod:`gateway.esme.session` builds the bind the rest of the gateway sees on top of one or two links.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import struct
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final, Literal, Protocol, cast, runtime_checkable

from backend.errors import Idea24Error
from gateway import tls
from gateway.esme.throttle import Backoff
from gateway.settings import SmscProfile
from gateway.smpp import codec
from gateway.smpp.errors import LocalProtocolError, ProtocolError
from gateway.smpp.pdu import COMMAND_IDS, Pdu, Status

log = logging.getLogger(__name__)

#: Called with each deliver_sm / data_sm; returns the command_status to answer with.
InboundHandler = Callable[[Pdu], Awaitable[int]]
LinkMode = Literal["trx", "tx", "rx"]


@runtime_checkable
class LossAware(Protocol):
    """An inbound handler that wants to know when a connection closed: a deliver_sm_resp
    written before may not have reached the SMSC, which then offers that MO again
    (:meth:`gateway.esme.inbound.InboundProcessor.connection_lost`)."""

    def connection_lost(self) -> None: ...


@runtime_checkable
class AnswersAtOnce(Protocol):
    """An inbound handler that can handle some PDUs without waiting (a delivery receipt is
    parsed and matched in memory): ``handle_now`` returns the command status to answer with,
    or None for "not this one" (it then goes to the handler as usual, in a task of its own)."""

    def handle_now(self, pdu: Pdu) -> int | None: ...


_BIND_COMMANDS: Mapping[str, str] = {
    "trx": "bind_transceiver",
    "tx": "bind_transmitter",
    "rx": "bind_receiver",
}


class SubmitError(Idea24Error):
    """A submit did not go through. ``temporary``: the same parts may be sent again later.

    ``accepted`` maps the index of each part the SMSC did accept to its message id, so a retry
    can send only the rest. ``attempted`` is False when nothing was written to the SMSC (the
    link was down before the send): a retry policy need not count that as a try.
    For a message of several parts (:meth:`gateway.esme.session.SmppSession.submit_many`):
    ``unanswered`` are the parts written whose answer never came (the SMSC may hold them: a
    retry may duplicate them) and ``late_possible``, of those, the parts that timed out on a
    live connection, whose late answer may still be reported through ``on_late``.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = Status.ESME_RUNKNOWNERR,
        temporary: bool,
        accepted: Mapping[int, str] | None = None,
        attempted: bool = True,
        unanswered: frozenset[int] = frozenset(),
        late_possible: frozenset[int] = frozenset(),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.temporary = temporary
        self.accepted: dict[int, str] = dict(accepted or {})
        self.attempted = attempted
        self.unanswered = unanswered
        self.late_possible = late_possible


class LinkDown(SubmitError):
    """The link is not bound (``attempted`` False: nothing was sent) or was lost while the
    request was outstanding."""

    def __init__(self, message: str = "link not bound", *, attempted: bool = False) -> None:
        super().__init__(
            message, status=Status.ESME_RUNKNOWNERR, temporary=True, attempted=attempted
        )


class ResponseTimeout(SubmitError):
    def __init__(self, command: str, timeout: float) -> None:
        super().__init__(
            f"no {command}_resp within {timeout:g}s", status=Status.ESME_RUNKNOWNERR, temporary=True
        )


#: What a submit_sm_resp says: (command_status, message_id).
Outcome = tuple[int, str]

_HEADER: Final = struct.Struct(">LLLL")
_SEQUENCE: Final = struct.Struct(">L")
_SUBMIT_SM_RESP: Final = COMMAND_IDS["submit_sm_resp"]
_SUBMIT_STATES: Final = codec.REQUESTS["esme"]["submit_sm"]


class _Batch:
    """Requests sent together for one caller, who awaits them all at once.

    Each request has an entry ``(batch, index, deadline)`` in the link's pending table; whoever
    settles it (a response, the sweeper, a lost connection) calls :meth:`SmppLink._settle`,
    which stores the outcome at ``index``, frees the window slot and wakes the caller after the
    last one: no future, timer or callback per PDU. ``raw`` batches carry pre-encoded submit_sm
    and get ``(status, message_id)`` tuples; the others get response :class:`Pdu` objects.
    """

    __slots__ = (
        "future",
        "on_late",
        "on_settled",
        "pdus",
        "raw",
        "results",
        "wait",
        "waiting",
        "windowed",
    )

    def __init__(
        self,
        size: int,
        wait: float,
        *,
        raw: bool,
        windowed: bool,
        pdus: Sequence[Pdu] = (),
        on_settled: Callable[[int, Any], None] | None = None,
        on_late: Callable[[int, Outcome | None], None] | None = None,
    ) -> None:
        self.results: list[Any] = [None] * size
        self.waiting = 0
        self.future: asyncio.Future[None] | None = None
        self.wait = wait
        self.raw = raw
        self.windowed = windowed
        self.pdus = pdus
        self.on_settled = on_settled
        self.on_late = on_late

    def command(self, index: int) -> str:
        return "submit_sm" if self.raw else self.pdus[index].command


_Entry = tuple[_Batch, int, float]
#: Called with the index of a timed-out request and its late answer, or None when none will come.
LateHandler = Callable[[int, Outcome | None], None]


#: Inbound PDUs a link has being handled at once before it stops reading from the SMSC.
MAX_INBOUND = 256


@dataclass(slots=True)
class LinkStats:
    """Plain counters; the app exports them to Prometheus."""

    connects: int = 0
    bind_failures: int = 0
    requests: int = 0
    timeouts: int = 0
    late_responses: int = 0
    late_accepted: int = 0  # late submit_sm_resp ESME_ROK handed to their caller
    nacks_sent: int = 0
    enquire_links_sent: int = 0
    enquire_links_answered: int = 0
    inbound: int = 0
    reads_paused: int = 0  # times reading stopped because inbound turns did not finish
    #: failed TLS connections by reason (:func:`gateway.tls.explain`)
    tls_failures: dict[str, int] = field(default_factory=dict)


class _Protocol(asyncio.Protocol):
    """One TCP connection. Writes made in one loop iteration leave in one ``send`` call: with a
    full window that is dozens of PDUs per system call instead of one each."""

    def __init__(self, link: SmppLink) -> None:
        self._link = link
        self._loop = asyncio.get_running_loop()
        self.lost: asyncio.Future[None] = self._loop.create_future()
        self.transport: asyncio.Transport | None = None
        self._out: list[bytes | bytearray] = []
        #: why the connection ended (a TLS alert after the handshake shows up here)
        self.error: Exception | None = None

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
        self._link._on_data(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.error = exc
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
        late_grace: float | None = None,
        max_late: int = 4096,
        max_inbound: int = MAX_INBOUND,
    ) -> None:
        self.profile = profile
        self.mode = mode
        self.name = f"{profile.name}/{mode}"
        self._on_inbound = on_inbound
        # A receipt per reply: handled in the read callback, not in a task per PDU.
        self._inbound_now = on_inbound.handle_now if isinstance(on_inbound, AnswersAtOnce) else None
        self._backoff = backoff or Backoff(0.5, 30.0)
        self._connect_timeout = connect_timeout
        self._stable_after = stable_after
        self._dead_after = dead_after
        #: how long a timed-out request waits for its late answer (default 2 x response timeout)
        self.late_grace = 2.0 * profile.response_timeout if late_grace is None else late_grace
        self._max_late = max(1, max_late)
        self._window_size = max(1, profile.window)
        self._in_window = 0
        self._window_open = asyncio.Event()
        self._window_open.set()
        #: sequence → (batch, index, deadline); a sweeper settles the overdue ones.
        self._pending: dict[int, _Entry] = {}
        #: sequence → (batch, index, expiry) of timed-out requests, oldest first
        self._late: OrderedDict[int, _Entry] = OrderedDict()
        self._conn: codec.SmppConnection | None = None
        self._proto: _Protocol | None = None
        self._rx = bytearray()  # received bytes not yet a whole PDU
        self._framing_lost = False
        self._bound = asyncio.Event()
        self._closing = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._last_rx = time.monotonic()
        self._consecutive_timeouts = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Inbound PDUs handled at once before reading stops (back-pressure, see _read_paused).
        self.max_inbound = max(2, max_inbound)
        self._read_paused = False
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

    def _inbound_done(self, proto: _Protocol, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if self._read_paused and len(self._tasks) <= self.max_inbound // 2:
            self._read_paused = False
            transport = proto.transport if proto is self._proto else None
            if transport is not None and not transport.is_closing():
                transport.resume_reading()
                log.info("smpp inbound: reading resumed", extra={"bind": self.name})
                self._on_data(proto, b"")  # PDUs already read when it paused

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
        [outcome] = await self.request_many((pdu,), response_timeout)
        if isinstance(outcome, SubmitError):
            raise outcome
        return outcome

    async def request_many(
        self, pdus: Sequence[Pdu], response_timeout: float | None = None
    ) -> list[Pdu | SubmitError]:
        """Send requests in order, as many at a time as the window has room for; one outcome
        per request (a response of any status, or the :class:`SubmitError` it met)."""
        batch = _Batch(len(pdus), self._wait(response_timeout), raw=False, windowed=True, pdus=pdus)
        await self._through_window(batch, pdus, self._send_pdus)
        return batch.results

    async def submit_templates(
        self,
        templates: Sequence[bytes],
        response_timeout: float | None = None,
        on_settled: Callable[[int, Outcome | SubmitError], None] | None = None,
        on_late: LateHandler | None = None,
    ) -> list[Outcome | SubmitError]:
        """Send pre-encoded submit_sm PDUs (:func:`gateway.smpp.fast.submit_sm_template`: the
        whole PDU with sequence 0) through the window; one outcome per template, in order:
        ``(command_status, message_id)`` of its response, or the :class:`SubmitError` it met.
        ``on_settled(index, outcome)`` is called as each one settles (from the I/O callback:
        keep it short), for a caller that refills its work before the slowest answer is in.
        ``on_late(index, answer)`` is called for a template that timed out: with its late
        ``(status, message_id)`` if it comes within ``late_grace`` on the same connection, else
        with None once no answer can come (grace over, connection closed).

        The hot path: each PDU costs a sequence number patched into its bytes and one entry in
        the pending table; responses are matched without building a :class:`Pdu`.
        """
        batch = _Batch(
            len(templates),
            self._wait(response_timeout),
            raw=True,
            windowed=True,
            on_settled=on_settled,
            on_late=on_late,
        )
        await self._through_window(batch, templates, self._send_templates)
        return batch.results

    async def submit_template(
        self, template: bytes, response_timeout: float | None = None
    ) -> Outcome | SubmitError:
        """:meth:`submit_templates` for one PDU (a message of one part, the common case)."""
        if self._closing.is_set() or not self._bound.is_set():
            return LinkDown("link is shutting down") if self._closing.is_set() else LinkDown()
        if self._in_window < self._window_size:  # room: no coroutine for the slot
            self._in_window += 1
        else:
            await self._acquire_slots(1)
        batch = _Batch(1, self._wait(response_timeout), raw=True, windowed=True)
        try:
            self._send_templates(batch, (template,), 0, 1)
        except SubmitError as exc:
            self._release_slot()
            return exc
        future = batch.future = asyncio.get_running_loop().create_future()
        try:
            await future
        except asyncio.CancelledError:
            self._abandon(batch)
            raise
        outcome: Outcome | SubmitError = batch.results[0]
        return outcome

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

    # -- the window ----------------------------------------------------------------------------

    def _wait(self, response_timeout: float | None) -> float:
        return self.profile.response_timeout if response_timeout is None else response_timeout

    async def _through_window(
        self,
        batch: _Batch,
        items: Sequence[Any],
        send: Callable[[_Batch, Sequence[Any], int, int], None],
    ) -> None:
        """Send ``items`` as the window makes room (``send(batch, items, start, count)`` for
        each run that fits) and wait until every one is settled."""
        total = len(items)
        index = 0
        try:
            while index < total:
                if self._closing.is_set() or not self._bound.is_set():
                    down = (
                        LinkDown("link is shutting down") if self._closing.is_set() else LinkDown()
                    )
                    for rest in range(index, total):
                        self._record(batch, rest, down)
                    break
                free = self._window_size - self._in_window
                if free > 0:  # room: no coroutine for the slots
                    room = min(total - index, free)
                    self._in_window += room
                else:
                    room = await self._acquire_slots(total - index)
                try:
                    send(batch, items, index, room)
                except SubmitError as exc:  # nothing of this run left: give its slots back
                    for _ in range(room):
                        self._release_slot()
                    for failed in range(index, index + room):
                        self._record(batch, failed, exc)
                index += room
            if batch.waiting:
                batch.future = asyncio.get_running_loop().create_future()
                await batch.future
        except asyncio.CancelledError:  # the caller gave up: forget its requests
            self._abandon(batch)
            raise

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

    def _settle(self, batch: _Batch, index: int, outcome: Any) -> None:
        """One request of ``batch`` is over (its entry already left the pending table)."""
        batch.results[index] = outcome
        if batch.on_settled is not None:
            batch.on_settled(index, outcome)
        if batch.windowed:
            self._in_window -= 1
            if self._in_window < self._window_size:
                self._window_open.set()
        batch.waiting -= 1
        if batch.waiting == 0:
            future = batch.future
            if future is not None and not future.done():
                future.set_result(None)

    @staticmethod
    def _record(batch: _Batch, index: int, outcome: Any) -> None:
        """An outcome for a request that never reached the pending table."""
        batch.results[index] = outcome
        if batch.on_settled is not None:
            batch.on_settled(index, outcome)

    def _abandon(self, batch: _Batch) -> None:
        """Drop a cancelled caller's outstanding requests (their responses become late)."""
        for seq, entry in list(self._pending.items()):
            if entry[0] is batch:
                del self._pending[seq]
                self._remember_late(seq, entry)
                if batch.windowed:
                    self._release_slot()
        batch.on_late = None  # nobody is listening any more
        batch.waiting = 0
        if not self._pending:
            self._idle.set()

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
                context = self._tls_context()
                _, proto = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: _Protocol(self),
                        self.profile.host,
                        self.profile.port,
                        ssl=context,
                        server_hostname=self.profile.host if context else None,
                    ),
                    self._connect_timeout,
                )
            except (ssl.SSLError, tls.TlsFilesError) as exc:
                self._tls_failed(exc)
                continue
            except (OSError, TimeoutError) as exc:
                log.warning("smpp connect failed: %s", exc, extra={"bind": self.name})
                continue
            self.stats.connects += 1
            self._proto = proto
            self._read_paused = False  # a new connection reads from the start
            self._conn = codec.SmppConnection("esme")
            self._rx = bytearray()
            self._framing_lost = False
            self._last_rx = started = time.monotonic()
            self._consecutive_timeouts = 0
            sweeper = asyncio.create_task(self._sweep())
            bound = False
            try:
                bound = await self._bind()
                if bound:
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
            if isinstance(proto.error, ssl.SSLError):
                self._tls_failed(proto.error)
            elif self.profile.tls and not bound and self._last_rx == started and proto.lost.done():
                # Not one byte back, not even a bind_resp: asyncio's and many TLS 1.3 servers
                # drop a refused client certificate without an alert the client could read.
                self._tls_failed(tls.ClosedAfterHandshake())
            if time.monotonic() - started >= self._stable_after:
                self._backoff.reset()
            if not self._closing.is_set():
                log.warning("smpp link lost", extra={"bind": self.name})

    def _tls_context(self) -> ssl.SSLContext | None:
        p = self.profile
        return tls.client_context(p.ca, p.cert, p.key) if p.tls else None

    def _tls_failed(self, exc: BaseException) -> None:
        reason, sentence = tls.explain(exc)
        self.stats.bind_failures += 1
        self.stats.tls_failures[reason] = self.stats.tls_failures.get(reason, 0) + 1
        log.error("smpp tls failed: %s", sentence, extra={"bind": self.name, "reason": reason})

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
        """A request outside the window (bind, enquire_link, unbind): its response or raise."""
        batch = _Batch(1, self._wait(response_timeout), raw=False, windowed=False, pdus=(pdu,))
        self._send_pdus(batch, (pdu,), 0, 1)
        try:
            batch.future = asyncio.get_running_loop().create_future()
            if batch.waiting:
                await batch.future
        except asyncio.CancelledError:
            self._abandon(batch)
            raise
        outcome = batch.results[0]
        if isinstance(outcome, SubmitError):
            raise outcome
        assert isinstance(outcome, Pdu)
        return outcome

    def _live(self) -> tuple[codec.SmppConnection, _Protocol]:
        conn, proto = self._conn, self._proto
        if conn is None or proto is None or proto.transport is None or proto.lost.done():
            raise LinkDown()
        return conn, proto

    def _send_pdus(self, batch: _Batch, pdus: Sequence[Pdu], start: int, count: int) -> None:
        """Encode and send ``pdus[start:start + count]`` through the codec (any request)."""
        conn, proto = self._live()
        deadline = time.monotonic() + batch.wait
        for index in range(start, start + count):
            pdu = pdus[index]
            seq = conn.next_sequence()
            try:  # numbered here: cheaper than letting the codec copy the Pdu
                data = conn.send(Pdu(pdu.command, seq, pdu.status, pdu.params, pdu.extra_tlvs))
            except LocalProtocolError as exc:
                error: SubmitError = (
                    LinkDown(str(exc))
                    if exc.status == Status.ESME_RINVBNDSTS
                    else SubmitError(str(exc), status=exc.status, temporary=False)
                )
                self._record(batch, index, error)
                if batch.windowed:
                    self._release_slot()
                continue
            self._pending[seq] = (batch, index, deadline)
            batch.waiting += 1
            self.stats.requests += 1
            proto.write(data)
        if self._pending:
            self._idle.clear()

    def _send_templates(
        self, batch: _Batch, templates: Sequence[bytes], start: int, count: int
    ) -> None:
        """Number pre-encoded submit_sm PDUs and send them in one write."""
        conn, proto = self._live()
        if conn.state not in _SUBMIT_STATES:
            raise LinkDown(f"cannot submit in state {conn.state.value}")
        deadline = time.monotonic() + batch.wait
        stop = start + count
        out = bytearray(templates[start] if count == 1 else b"".join(templates[start:stop]))
        pending = self._pending
        next_sequence = conn.next_sequence
        pack_into = _SEQUENCE.pack_into
        offset = 0
        for index in range(start, stop):
            seq = next_sequence()
            pack_into(out, offset + 12, seq)
            offset += len(templates[index])
            pending[seq] = (batch, index, deadline)
        batch.waiting += count
        self.stats.requests += count
        self._idle.clear()
        proto.write(out)

    async def _sweep(self) -> None:
        """Settle requests whose response is overdue; runs while a connection is up. One scan
        per tick over the pending table instead of a timer per request."""
        tick = max(0.01, min(0.5, self.profile.response_timeout / 8))
        pending = self._pending
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            self._expire_late(now)
            overdue = [seq for seq, entry in pending.items() if entry[2] <= now]
            for seq in overdue:
                entry = pending.pop(seq)
                batch, index, _ = entry
                self._remember_late(seq, entry)
                self.stats.timeouts += 1
                self._consecutive_timeouts += 1
                self._settle(batch, index, ResponseTimeout(batch.command(index), batch.wait))
            if overdue:
                if not pending:
                    self._idle.set()
                proto = self._proto
                silent = now - self._last_rx >= self.profile.response_timeout
                if (
                    self._consecutive_timeouts >= self._dead_after
                    and silent
                    and proto is not None
                    and proto.transport is not None
                ):
                    log.warning("smpp responses stopped: dropping link", extra={"bind": self.name})
                    proto.transport.abort()

    def _fail_pending(self, proto: _Protocol) -> None:
        if proto is not self._proto:
            return
        pending, self._pending = self._pending, {}
        for batch, index, _ in pending.values():
            lost = LinkDown("link lost with the request outstanding", attempted=True)
            self._settle(batch, index, lost)
        late, self._late = self._late, OrderedDict()
        for batch, index, _ in late.values():  # their answers cannot come on a new connection
            self._tell_late(batch, index, None)
        self._idle.set()

    def _remember_late(self, seq: int, entry: _Entry) -> None:
        """Keep a timed-out request so its late answer can still be reported (bounded)."""
        batch, index, _ = entry
        self._late[seq] = (batch, index, time.monotonic() + self.late_grace)
        while len(self._late) > self._max_late:
            _, (old, old_index, _) = self._late.popitem(last=False)
            self._tell_late(old, old_index, None)

    def _expire_late(self, now: float) -> None:
        """Forget timed-out requests whose grace is over (entries are in expiry order)."""
        late = self._late
        while late:
            seq, (batch, index, expiry) = next(iter(late.items()))
            if expiry > now:
                return
            del late[seq]
            self._tell_late(batch, index, None)

    def _tell_late(self, batch: _Batch, index: int, answer: Outcome | None) -> None:
        on_late = batch.on_late
        if on_late is not None:
            try:
                on_late(index, answer)
            except Exception:  # a caller's bug must not break the connection's I/O
                log.exception("smpp on_late callback failed", extra={"bind": self.name})

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
        if isinstance(self._on_inbound, LossAware):
            self._on_inbound.connection_lost()

    def _on_data(self, proto: _Protocol, data: bytes) -> None:
        """Cut the stream into PDUs. A plain submit_sm_resp (message_id, no TLVs) to a
        pre-encoded submit settles it here without a :class:`Pdu`; every other PDU goes through
        the codec, in stream order (it checks, decodes and tracks the bind state)."""
        conn = self._conn
        if conn is None or proto is not self._proto:
            return
        self._last_rx = time.monotonic()
        if self._framing_lost:
            conn.receive_data(data)
            self._drain(proto, conn)
            return
        buf = self._rx
        buf += data
        size = len(buf)
        pos = 0
        pending = self._pending
        unpack = _HEADER.unpack_from
        answered = False
        while size - pos >= 16:
            length, command_id, status, seq = unpack(buf, pos)
            if not 16 <= length <= codec.MAX_PDU_LENGTH:  # the codec reports it and closes
                self._framing_lost = True
                conn.receive_data(bytes(buf[pos:]))
                buf.clear()
                self._drain(proto, conn)
                return
            end = pos + length
            if end > size:
                break
            if command_id == _SUBMIT_SM_RESP:
                entry = pending.get(seq)
                if entry is not None and entry[0].raw:
                    nul = buf.find(0, pos + 16, end) if length > 16 else -1
                    if length == 16 or (nul == end - 1 and nul - pos <= 80):
                        del pending[seq]
                        message_id = buf[pos + 16 : nul].decode("latin-1") if nul > 0 else ""
                        self._settle(entry[0], entry[1], (status, message_id))
                        answered = True
                        pos = end
                        continue
            conn.receive_data(bytes(buf[pos:end]))
            pos = end
            self._drain(proto, conn)
            if proto is not self._proto:
                return
            if self._read_paused:
                break  # the rest of this read waits too, until reading resumes
        del buf[:pos]
        if answered:
            self._consecutive_timeouts = 0
            if not pending:
                self._idle.set()

    def _drain(self, proto: _Protocol, conn: codec.SmppConnection) -> None:
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
                batch, index, _ = entry
                if batch.raw:
                    outcome: Any = (pdu.status, str(pdu.get("message_id", "") or ""))
                else:
                    outcome = pdu
                self._settle(batch, index, outcome)
                if not self._pending:
                    self._idle.set()
            elif pdu.sequence in self._late:
                batch, index, _ = self._late.pop(pdu.sequence)
                self.stats.late_responses += 1
                log.warning(
                    "smpp late %s",
                    pdu.command,
                    extra={"bind": self.name, "seq": pdu.sequence, "status": pdu.status},
                )
                if batch.raw:
                    if pdu.status == Status.ESME_ROK:
                        self.stats.late_accepted += 1
                    message_id = str(pdu.get("message_id", "") or "")
                    self._tell_late(batch, index, (pdu.status, message_id))
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
            if self._inbound_now is not None:
                try:
                    status = self._inbound_now(pdu)
                except Exception:  # as in _inbound: the link lives on, the SMSC will retry
                    log.exception("smpp inbound handler failed", extra={"bind": self.name})
                    status = Status.ESME_RX_T_APPN
                if status is not None:
                    self._answer(proto, conn, pdu.response(status, message_id=""))
                    return
            task = asyncio.create_task(self._inbound(proto, conn, pdu))
            self._tasks.add(task)
            task.add_done_callback(partial(self._inbound_done, proto))
            transport = proto.transport
            if (
                len(self._tasks) >= self.max_inbound
                and not self._read_paused
                and transport is not None
                and not transport.is_closing()
            ):
                # Turns do not finish (store or database stalled): stop reading instead of
                # buffering MO without bound; the SMSC's window and TCP hold the rest.
                transport.pause_reading()
                self._read_paused = True
                self.stats.reads_paused += 1
                log.warning(
                    "smpp inbound: %d MO being handled, reading paused",
                    len(self._tasks),
                    extra={"bind": self.name},
                )
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
