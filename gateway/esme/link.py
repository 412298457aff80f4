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

The window and the pending table are :class:`gateway.esme.requests.RequestTable`, reading the
stream and dispatching what arrives :class:`gateway.esme.receiving.LinkReceiver`; this module adds
the connection's life and the sending. :mod:`gateway.esme.session` builds the bind the rest of the
gateway sees on top of one or two links.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Final

from gateway import tls
from gateway.esme.profile import BindProfile
from gateway.esme.receiving import MAX_INBOUND, LinkReceiver
from gateway.esme.records import (
    AnswerNow,
    InboundHandler,
    LateHandler,
    LinkDown,
    LinkMode,
    Outcome,
    ResponseTimeout,
    SubmitError,
    status_name,
)
from gateway.esme.requests import Batch
from gateway.esme.throttle import Backoff
from gateway.esme.transport import LinkProtocol
from gateway.smpp import codec, wire
from gateway.smpp.errors import LocalProtocolError
from gateway.smpp.pdu import Pdu, Status

log = logging.getLogger(__name__)

_BIND_COMMANDS: Mapping[str, str] = {
    "trx": "bind_transceiver",
    "tx": "bind_transmitter",
    "rx": "bind_receiver",
}


def bind_request(profile: BindProfile, mode: LinkMode) -> Pdu:
    """The bind PDU a link in ``mode`` sends with this profile's credentials (SMPP 3.4 4.1)."""
    return Pdu(
        _BIND_COMMANDS[mode],
        params={
            "system_id": profile.system_id,
            "password": profile.password,
            "system_type": profile.system_type,
            "interface_version": 0x34,
            "addr_ton": profile.source_ton,
            "addr_npi": profile.source_npi,
            "address_range": profile.address_range,
        },
    )


_SUBMIT_STATES: Final = codec.REQUESTS["esme"]["submit_sm"]


class SmppLink(LinkReceiver):
    """One TCP connection and its bind, re-established until :meth:`close`."""

    def __init__(
        self,
        profile: BindProfile,
        mode: LinkMode = "trx",
        on_inbound: InboundHandler | None = None,
        *,
        backoff: Backoff | None = None,
        connect_timeout: float = 5.0,
        stable_after: float = 10.0,
        dead_after: int = 3,
        late_grace: float | None = None,
        max_late: int = 4096,
        answer_now: AnswerNow | None = None,
        on_connection_lost: Callable[[], None] | None = None,
        max_inbound: int = MAX_INBOUND,
    ) -> None:
        super().__init__(
            f"{profile.name}/{mode}",
            on_inbound,
            answer_now,
            window=profile.window,
            response_timeout=profile.response_timeout,
            late_grace=2.0 * profile.response_timeout if late_grace is None else late_grace,
            max_late=max_late,
            max_inbound=max_inbound,
        )
        self.profile = profile
        self.mode = mode
        self._on_connection_lost = on_connection_lost
        self._backoff = backoff or Backoff(0.5, 30.0)
        self._connect_timeout = connect_timeout
        self._stable_after = stable_after
        self._dead_after = dead_after
        self._runner: asyncio.Task[None] | None = None

    # -- public -----------------------------------------------------------------------------

    @property
    def bound(self) -> bool:
        return self._bound.is_set()

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
        [outcome] = await self.request_many((pdu,), response_timeout)
        if isinstance(outcome, SubmitError):
            raise outcome
        return outcome

    async def request_many(
        self, pdus: Sequence[Pdu], response_timeout: float | None = None
    ) -> list[Pdu | SubmitError]:
        """Send requests in order, as many at a time as the window has room for; one outcome
        per request (a response of any status, or the :class:`SubmitError` it met)."""
        batch = Batch(len(pdus), self._wait(response_timeout), raw=False, windowed=True, pdus=pdus)
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
        batch = Batch(
            len(templates),
            self._wait(response_timeout),
            raw=True,
            windowed=True,
            on_settled=on_settled,
            on_late=on_late,
        )
        await self._through_window(batch, templates, self._send_templates)
        return batch.results

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
                context = self._tls_context()
                _, proto = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: LinkProtocol(self._on_data, self._on_lost),
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
        pdu = bind_request(p, self.mode)
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

    async def _keepalive(self, proto: LinkProtocol) -> None:
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
        batch = Batch(1, self._wait(response_timeout), raw=False, windowed=False, pdus=(pdu,))
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

    def _live(self) -> tuple[codec.SmppConnection, LinkProtocol]:
        conn, proto = self._conn, self._proto
        if conn is None or proto is None or proto.transport is None or proto.lost.done():
            raise LinkDown()
        return conn, proto

    def _send_pdus(self, batch: Batch, pdus: Sequence[Pdu], start: int, count: int) -> None:
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
        self, batch: Batch, templates: Sequence[bytes], start: int, count: int
    ) -> None:
        """Number pre-encoded submit_sm PDUs and send them in one write."""
        conn, proto = self._live()
        if conn.state not in _SUBMIT_STATES:
            raise LinkDown(f"cannot submit in state {conn.state.value}")
        deadline = time.monotonic() + batch.wait
        pending = self._pending
        next_sequence = conn.next_sequence
        if count == 1:
            seq = next_sequence()
            pending[seq] = (batch, start, deadline)
            data = wire.numbered_one(templates[start], seq)
        else:
            sequences = [next_sequence() for _ in range(count)]
            for index, seq in enumerate(sequences, start):
                pending[seq] = (batch, index, deadline)
            data = wire.numbered(templates, start, sequences)
        batch.waiting += count
        self.stats.requests += count
        self._idle.clear()
        proto.write(data)

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

    def _fail_pending(self, proto: LinkProtocol) -> None:
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

    def _on_lost(self, proto: LinkProtocol) -> None:
        self._bound.clear()
        self._fail_pending(proto)
        if self._on_connection_lost is not None:
            self._on_connection_lost()
