"""The receiving side of an SMPP link: cutting the stream into PDUs, matching responses to
requests, answering the SMSC's requests and handing deliver_sm / data_sm on.

A plain submit_sm_resp to a pre-encoded submit is settled straight from the bytes
(:mod:`gateway.smpp.wire`); every other PDU goes through the connection's
:class:`gateway.smpp.codec.SmppConnection` in stream order. :class:`gateway.esme.link.SmppLink`
adds the connection's life (connect, bind, keep-alive, reconnect) and the sending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from functools import partial
from typing import Any, Final

from gateway.esme.records import AnswerNow, InboundHandler, LinkStats
from gateway.esme.requests import RequestTable
from gateway.esme.transport import LinkProtocol
from gateway.smpp import codec, wire
from gateway.smpp.errors import LocalProtocolError, ProtocolError
from gateway.smpp.pdu import Pdu, Status

log = logging.getLogger("gateway.esme.link")

_SUBMIT_SM_RESP: Final = wire.SUBMIT_SM_RESP
#: Inbound PDUs a link has being handled at once before it stops reading from the SMSC.
MAX_INBOUND = 256


class LinkReceiver(RequestTable):
    """What one link reads: responses settle requests, requests from the SMSC are answered."""

    def __init__(
        self,
        name: str,
        on_inbound: InboundHandler | None,
        answer_now: AnswerNow | None,
        *,
        window: int,
        response_timeout: float,
        late_grace: float,
        max_late: int,
        max_inbound: int = MAX_INBOUND,
    ) -> None:
        super().__init__(
            name,
            window=window,
            response_timeout=response_timeout,
            late_grace=late_grace,
            max_late=max_late,
        )
        self._on_inbound = on_inbound
        # A receipt per reply: handled in the read callback, not in a task per PDU.
        self._answer_now = answer_now
        self._conn: codec.SmppConnection | None = None
        self._proto: LinkProtocol | None = None
        self._rx = bytearray()  # received bytes not yet a whole PDU
        self._framing_lost = False
        self._last_rx = time.monotonic()
        self._consecutive_timeouts = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self.stats = LinkStats()
        #: Inbound PDUs handled at once before reading stops (back-pressure, see _read_paused).
        self.max_inbound = max(2, max_inbound)
        self._read_paused = False

    def _inbound_done(self, proto: LinkProtocol, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if self._read_paused and len(self._tasks) <= self.max_inbound // 2:
            self._read_paused = False
            transport = proto.transport if proto is self._proto else None
            if transport is not None and not transport.is_closing():
                transport.resume_reading()
                log.info("smpp inbound: reading resumed", extra={"bind": self.name})
                self._on_data(proto, b"")  # PDUs already read when it paused

    def _write(self, proto: LinkProtocol, data: bytes) -> None:
        proto.write(data)

    def _answer(self, proto: LinkProtocol, conn: codec.SmppConnection, pdu: Pdu) -> None:
        """Send a response; one the codec refuses (connection closed) is dropped with a log."""
        try:
            self._write(proto, conn.send(pdu))
        except LocalProtocolError as exc:
            log.warning("smpp cannot answer %s: %s", pdu.command, exc, extra={"bind": self.name})

    def _on_data(self, proto: LinkProtocol, data: bytes) -> None:
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
        unpack = wire.read_header
        plain_message_id = wire.plain_message_id
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
                    message_id = plain_message_id(buf, pos, end)
                    if message_id is not None:
                        del pending[seq]
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

    def _drain(self, proto: LinkProtocol, conn: codec.SmppConnection) -> None:
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

    def _dispatch(self, proto: LinkProtocol, conn: codec.SmppConnection, pdu: Pdu) -> None:
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
            if self._answer_now is not None:
                try:
                    status = self._answer_now(pdu)
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

    async def _inbound(self, proto: LinkProtocol, conn: codec.SmppConnection, pdu: Pdu) -> None:
        status: int = Status.ESME_ROK
        if self._on_inbound is not None:
            try:
                status = await self._on_inbound(pdu)
            except Exception:  # a handler bug must not kill the link; the SMSC will retry
                log.exception("smpp inbound handler failed", extra={"bind": self.name})
                status = Status.ESME_RX_T_APPN
        if proto is self._proto and not proto.lost.done():
            self._answer(proto, conn, pdu.response(status, message_id=""))
