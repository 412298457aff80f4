"""One ESME connection to the simulated SMSC: bind state, responses, the deliver_sm window.

Theory of operation. The session is an ``asyncio.Protocol``: the codec's :class:`Framer` cuts
the byte stream into PDUs, each PDU goes through the shared sans-I/O
:class:`gateway.smpp.codec.SmppConnection` and is answered at once, and everything written during
one ``data_received`` (responses, then the receipts those submits asked for) leaves in a single
``transport.write``. Two PDUs that make up nearly all traffic skip the general path where the
bind-state table would only say yes: a submit_sm while bound to transmit is decoded by the codec
and handled without a state check, a plain deliver_sm_resp is read from its header alone, and
submit_sm_resp and receipts are written from pre-packed bytes (:mod:`gateway.smpp.wire`).

Nothing here awaits, so one slow client never holds up another: when its socket buffer fills
(``pause_writing``) the session stops reading from it and stops sending it deliver_sm, which
wait in ``pending`` until ``resume_writing``. Server-originated deliver_sm (MO, receipts) are
windowed: at most ``window`` await their deliver_sm_resp; if the connection dies they go back to
the SMSC for another session.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, cast

from gateway.smpp import wire
from gateway.smpp.codec import BindState, Framer, SmppConnection, decode
from gateway.smpp.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from gateway.smpp.pdu import TEMPORARY_STATUSES, Pdu, Status
from simulator.delivery import Delivery
from simulator.faults import SimulatorHandler
from simulator.store import HandsetStore
from simulator.trace import PduTrace

log = logging.getLogger(__name__)

BIND_MODES = {"bind_transmitter": "tx", "bind_receiver": "rx", "bind_transceiver": "trx"}
_TX_STATES = frozenset({BindState.BOUND_TX, BindState.BOUND_TRX})
_RX_STATES = frozenset({BindState.BOUND_RX, BindState.BOUND_TRX})


class SessionHost(Protocol):
    """What a session asks of the SMSC it belongs to (:class:`simulator.smsc.Smsc`)."""

    handler: SimulatorHandler
    store: HandsetStore
    trace: PduTrace
    system_id: str
    window: int
    undelivered: deque[Delivery]

    def now(self) -> float: ...
    def attach(self, session: SmscSession) -> None: ...
    def detach(self, session: SmscSession, redeliver: list[Delivery]) -> None: ...
    def check_bind(self, pdu: Pdu, peer: str = "") -> int: ...
    def bound(self, session: SmscSession) -> None: ...
    def submit(self, session: SmscSession, pdu: Pdu) -> None: ...
    def retry(self, delivery: Delivery) -> None: ...
    def query(self, pdu: Pdu) -> Pdu: ...
    def drain_receipts(self) -> None: ...


class SmscSession(asyncio.Protocol):
    def __init__(self, smsc: SessionHost) -> None:
        self.smsc = smsc
        self.conn = SmppConnection("smsc")
        self.framer = Framer()
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.system_id: str | None = None
        self.mode: str | None = None
        self.address_range = ""
        self.pending: deque[Delivery] = deque()
        self.outstanding: dict[int, tuple[Delivery, float]] = {}
        self.last_rx = 0.0
        self.enquire_sent = 0.0
        self.closed = False
        self.bind_info = smsc.trace.new_bind("?")
        self._out: list[bytes] = []
        self._in_receive = False
        self._flush_scheduled = False
        self._paused = False
        self._handlers: dict[str, Callable[[Pdu], None]] = {
            "bind_transmitter": self._on_bind,
            "bind_receiver": self._on_bind,
            "bind_transceiver": self._on_bind,
            "submit_sm": self._on_submit,
            "data_sm": self._on_submit,
            "deliver_sm_resp": self._on_deliver_resp,
            "data_sm_resp": self._on_deliver_resp,
            "generic_nack": self._on_deliver_resp,
            "enquire_link": self._on_enquire_link,
            "enquire_link_resp": self._on_enquire_link_resp,
            "unbind": self._on_unbind,
            "unbind_resp": self._on_unbind_resp,
            "query_sm": self._on_query,
        }

    @property
    def can_receive(self) -> bool:
        return self.mode in ("rx", "trx") and not self.closed

    @property
    def can_transmit(self) -> bool:
        return self.mode in ("tx", "trx")

    def describe(self) -> dict[str, Any]:
        return {
            "peer": self.peer,
            "system_id": self.system_id,
            "mode": self.mode,
            "pending": len(self.pending),
            "outstanding": len(self.outstanding),
            "tls": self.tls_version,
        }

    @property
    def tls_version(self) -> str | None:
        """``TLSv1.3`` and the like on the TLS listener, None in clear text."""
        transport = self.transport
        tls = transport.get_extra_info("ssl_object") if transport is not None else None
        return str(tls.version()) if tls is not None else None

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.bind_info.peer = self.peer
        self.last_rx = self.smsc.now()
        self.smsc.attach(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        redeliver = [d for d, _ in self.outstanding.values()] + list(self.pending)
        self.outstanding.clear()
        self.pending.clear()
        self.smsc.detach(self, redeliver)

    def pause_writing(self) -> None:
        self._paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._paused = False
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()
        self.pump()

    def data_received(self, data: bytes) -> None:
        self.last_rx = self.smsc.now()
        self._in_receive = True
        framer = self.framer
        conn = self.conn
        trace = self.smsc.trace
        is_bare_deliver_sm_resp = wire.is_bare_deliver_sm_resp
        is_submit_sm = wire.is_submit_sm
        try:
            framer.feed(data)
            while not self.closed:
                try:
                    frame = framer.next_frame()
                except RemoteProtocolError as exc:  # framing lost: answer and hang up
                    conn.close()
                    self._on_error(exc)
                    break
                if frame is None:
                    break
                if trace.size:
                    trace.record(self.bind_info, "in", frame)
                if is_bare_deliver_sm_resp(frame):
                    self._on_deliver_resp_frame(frame)
                    continue
                if is_submit_sm(frame) and conn.state in _TX_STATES:
                    try:
                        event: Pdu | ProtocolError | None = decode(frame)
                    except RemoteProtocolError as exc:
                        event = exc
                else:
                    conn.receive_data(frame)
                    event = conn.next_event()
                if event is None:
                    break
                if isinstance(event, ProtocolError):
                    self._on_error(event)
                else:
                    self._dispatch(event)
        finally:
            self._in_receive = False
            self.smsc.drain_receipts()
            self.flush()

    # -- writing -----------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue bytes; they leave together at the end of the current read or on the next tick."""
        if self.closed:
            return
        if self.smsc.trace.size:
            self.smsc.trace.record(self.bind_info, "out", data)
        self._out.append(data)
        if not self._in_receive and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        if self._out and self.transport is not None and not self.closed:
            data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
            self._out.clear()
            self.transport.write(data)

    def send(self, pdu: Pdu) -> bool:
        """Encode and queue ``pdu``; False when the bind state or the codec refuses it."""
        try:
            self.write(self.conn.send(pdu))
        except LocalProtocolError as exc:
            log.warning(
                "not sent", extra={"peer": self.peer, "command": pdu.command, "error": str(exc)}
            )
            return False
        return True

    def accept_submit(self, request: Pdu, message_id: str) -> None:
        """Answer a submit_sm / data_sm with ESME_ROK and ``message_id`` (honouring delays)."""
        if request.command == "submit_sm" and self.smsc.handler.response_delay(request) <= 0:
            data = wire.submit_sm_resp(request.sequence, message_id)
            if data is not None and self.conn.state is not BindState.CLOSED:
                self.write(data)
                return
        self.respond(request, request.response(0, message_id=message_id))

    def respond(self, request: Pdu, response: Pdu) -> None:
        delay = self.smsc.handler.response_delay(request)
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self._send_late, response)
        else:
            self.send(response)

    def _send_late(self, response: Pdu) -> None:
        if not self.closed:
            self.send(response)

    def close(self, *, abort: bool = False) -> None:
        if self.transport is None or self.closed:
            return
        self.flush()
        self.closed = True
        if abort:
            self.transport.abort()
        else:
            self.transport.close()

    # -- deliver_sm window -------------------------------------------------------------------

    def enqueue(self, delivery: Delivery) -> None:
        self.pending.append(delivery)
        self.pump()

    def enqueue_many(self, deliveries: list[Delivery]) -> None:
        self.pending.extend(deliveries)
        self.pump()

    def pump(self) -> None:
        window = self.smsc.window
        now = self.smsc.now()
        pending = self.pending
        outstanding = self.outstanding
        conn = self.conn
        while pending and len(outstanding) < window and not self._paused:
            if not self.can_receive:
                return
            delivery = pending.popleft()
            body = delivery.body
            if body is not None and conn.state in _RX_STATES:  # pre-packed receipt
                sequence = conn.next_sequence()
                outstanding[sequence] = (delivery, now)
                self.write(wire.deliver_sm(sequence, body))
                continue
            template = delivery.template()
            pdu = Pdu(template.command, conn.next_sequence(), 0, template.params)
            outstanding[pdu.sequence] = (delivery, now)
            if not self.send(pdu):
                del outstanding[pdu.sequence]
                self.smsc.undelivered.append(delivery)
                return

    def expire_outstanding(self, now: float, timeout: float) -> list[Delivery]:
        """deliver_sm unanswered for ``timeout`` seconds: taken back for redelivery."""
        late = [seq for seq, (_, sent) in self.outstanding.items() if now - sent > timeout]
        return [self.outstanding.pop(seq)[0] for seq in late]

    # -- dispatch ------------------------------------------------------------------------------

    def _dispatch(self, pdu: Pdu) -> None:
        if self.smsc.handler.should_drop(pdu):
            log.info("fault: dropping connection", extra={"peer": self.peer})
            self.close(abort=True)
            return
        handler = self._handlers.get(pdu.command)
        if handler is not None:
            handler(pdu)
        elif not pdu.is_response:  # submit_multi, cancel_sm, replace_sm...: not implemented here
            self.send(Pdu("generic_nack", pdu.sequence, Status.ESME_RINVCMDID))

    def _on_error(self, error: ProtocolError) -> None:
        log.info(
            "malformed PDU", extra={"peer": self.peer, "status": error.status, "error": str(error)}
        )
        self.write(self.conn.nack_for(error))
        if error.fatal:
            self.close()

    def _on_bind(self, pdu: Pdu) -> None:
        status = (
            Status.ESME_RALYBND if self.mode is not None else self.smsc.check_bind(pdu, self.peer)
        )
        response = pdu.response(status, system_id=self.smsc.system_id)
        self.send(response)
        if status == 0:
            self.system_id = str(pdu.get("system_id", ""))
            self.mode = BIND_MODES[pdu.command]
            self.address_range = str(pdu.get("address_range", "") or "")
            self.bind_info.system_id, self.bind_info.mode = self.system_id, self.mode
            log.info("bound", extra={"peer": self.peer, "mode": self.mode})
            self.smsc.bound(self)

    def _on_submit(self, pdu: Pdu) -> None:
        if not self.can_transmit or self.system_id is None:
            self.send(pdu.response(Status.ESME_RINVBNDSTS, message_id=""))
            return
        self.smsc.submit(self, pdu)

    def _on_deliver_resp_frame(self, frame: bytes) -> None:
        """A deliver_sm_resp with an empty message_id, read from its header alone."""
        _length, _command, status, sequence = wire.read_header(frame)
        pdu = Pdu("deliver_sm_resp", sequence, status, {"message_id": ""})
        if self.smsc.handler.should_drop(pdu):
            log.info("fault: dropping connection", extra={"peer": self.peer})
            self.close(abort=True)
            return
        self._on_deliver_resp(pdu)

    def _on_deliver_resp(self, pdu: Pdu) -> None:
        entry = self.outstanding.pop(pdu.sequence, None)
        if entry is None:
            return
        delivery = entry[0]
        status = pdu.status
        if status in TEMPORARY_STATUSES:
            self.smsc.retry(delivery)
        else:
            if delivery.done is not None:
                delivery.done(status)
            if status == 0 and delivery.receipt is not None:
                self.smsc.store.set_receipt(*delivery.receipt)
        if self.pending:
            self.pump()

    def _on_enquire_link(self, pdu: Pdu) -> None:
        self.respond(pdu, pdu.response())

    def _on_enquire_link_resp(self, pdu: Pdu) -> None:
        self.enquire_sent = 0.0

    def enquire_link(self, now: float) -> None:
        if self.mode is not None or self.conn.state is BindState.OPEN:
            self.enquire_sent = now
            self.send(Pdu("enquire_link"))

    def _on_unbind(self, pdu: Pdu) -> None:
        self.send(pdu.response())
        self.mode = None
        self.close()

    def _on_unbind_resp(self, pdu: Pdu) -> None:
        self.close()

    def unbind(self) -> None:
        if self.mode is None:
            self.close()
            return
        self.send(Pdu("unbind"))
        self.mode = None

    def _on_query(self, pdu: Pdu) -> None:
        if not self.can_transmit:
            self.send(pdu.response(Status.ESME_RINVBNDSTS))
            return
        self.respond(pdu, self.smsc.query(pdu))
