"""Sans-I/O SMPP 3.4: bytes in, :class:`~gateway.smpp.pdu.Pdu` events out, PDUs in, bytes out.

Theory of operation (after h11). Nothing here touches a socket, a clock or asyncio: the ESME
session and the simulator each own the I/O and feed bytes to one :class:`SmppConnection`.

- :class:`Framer` cuts a byte stream (any chunking) into whole PDUs by command_length. A length
  outside 16..65536 means framing is lost: a fatal :class:`RemoteProtocolError`.
- :func:`decode` turns one frame into a :class:`Pdu` or raises :class:`RemoteProtocolError`
  carrying the command_status to answer with; :func:`encode` is the reverse and raises
  :class:`LocalProtocolError` rather than truncate anything.
- Two paths do the packing: a hand-written struct path for the hot PDUs
  (:mod:`gateway.smpp.fast`) and smpplib for everything else (:mod:`gateway.smpp.reference`),
  with :mod:`gateway.smpp.schema` for the PDUs smpplib does not know. Differential tests prove
  the fast path equals smpplib byte for byte.
- :class:`SmppConnection` adds sequence numbers and the bind-state table: which side may send
  which request in which state. A remote PDU that breaks the table or the codec becomes an error
  event (never an exception), and :meth:`SmppConnection.nack_for` gives the bytes to answer it.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import replace
from enum import Enum
from typing import Final, Literal

from gateway.smpp import fast, reference, schema
from gateway.smpp.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from gateway.smpp.pdu import COMMAND_IDS, COMMAND_NAMES, HEADER, RESPONSE_BIT, Pdu, Status

__all__ = [
    "MAX_PDU_LENGTH",
    "MIN_PDU_LENGTH",
    "BindState",
    "Framer",
    "SmppConnection",
    "decode",
    "encode",
]

MIN_PDU_LENGTH: Final = 16
MAX_PDU_LENGTH: Final = 65536
MAX_SEQUENCE: Final = 0x7FFFFFFF
_DECODE_FAILURES = (struct.error, ValueError, IndexError, UnicodeError)


def encode(pdu: Pdu) -> bytes:
    """The wire form of ``pdu``; LocalProtocolError if a field breaks SMPP's limits."""
    cmd = pdu.command
    encoder = fast.ENCODERS.get(cmd)
    if encoder is not None:  # checks its own input, falls back to the smpplib path when unsure
        data = encoder(pdu)
        if len(data) > MAX_PDU_LENGTH:
            raise LocalProtocolError(
                f"{cmd}: {len(data)} octets, at most {MAX_PDU_LENGTH}", status=Status.ESME_RSYSERR
            )
        return data
    if cmd not in COMMAND_IDS:
        raise LocalProtocolError(f"unknown command {cmd!r}", status=Status.ESME_RINVCMDID)
    if not 0 <= pdu.sequence <= 0xFFFFFFFF or not 0 <= pdu.status <= 0xFFFFFFFF:
        raise LocalProtocolError(
            f"{cmd}: sequence or status out of range", status=Status.ESME_RSYSERR
        )
    params = pdu.params
    if params.get("short_message") and params.get("message_payload"):
        raise LocalProtocolError(
            f"{cmd}: short_message and message_payload are exclusive", status=Status.ESME_RSYSERR
        )
    if cmd in reference.SUPPORTED:
        data = reference.encode(pdu)
    else:
        body = schema.encode_generic(cmd, params, pdu.extra_tlvs)
        data = HEADER.pack(16 + len(body), COMMAND_IDS[cmd], pdu.status, pdu.sequence) + body
    if len(data) > MAX_PDU_LENGTH:
        raise LocalProtocolError(
            f"{cmd}: {len(data)} octets, at most {MAX_PDU_LENGTH}", status=Status.ESME_RSYSERR
        )
    return data


def decode(frame: bytes) -> Pdu:
    """One whole frame as a Pdu; RemoteProtocolError (with status, sequence) if it is malformed."""
    if len(frame) < MIN_PDU_LENGTH:
        raise RemoteProtocolError(
            f"{len(frame)} octets is shorter than a header",
            status=Status.ESME_RINVCMDLEN,
            fatal=True,
        )
    length, command_id, status, sequence = HEADER.unpack_from(frame)
    if length != len(frame):
        raise RemoteProtocolError(
            f"command_length {length} but {len(frame)} octets",
            status=Status.ESME_RINVCMDLEN,
            sequence=sequence,
            command_id=command_id,
        )
    cmd = COMMAND_NAMES.get(command_id)
    if cmd is None:
        raise RemoteProtocolError(
            f"unknown command_id 0x{command_id:08x}",
            status=Status.ESME_RINVCMDID,
            sequence=sequence,
            command_id=command_id,
        )
    try:
        decoder = fast.DECODERS.get(cmd)
        if decoder is not None:
            return decoder(frame)
        if cmd in reference.SUPPORTED:
            return reference.decode(frame)
        params, extra = schema.decode_generic(cmd, frame[16:])
        return Pdu(cmd, sequence, status, params, extra)
    except RemoteProtocolError as exc:
        exc.sequence = sequence
        exc.command_id = command_id
        raise
    except _DECODE_FAILURES as exc:  # a gap in our validation; still the peer's fault
        raise RemoteProtocolError(
            f"{cmd}: cannot decode: {exc!r}",
            status=Status.ESME_RSYSERR,
            sequence=sequence,
            command_id=command_id,
        ) from exc


class Framer:
    """Cuts a byte stream into whole PDUs; once framing is lost it stays lost."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._lost: RemoteProtocolError | None = None

    def feed(self, data: bytes) -> None:
        self._buffer += data

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def next_frame(self) -> bytes | None:
        if self._lost is not None:
            raise self._lost
        buf = self._buffer
        if len(buf) < 4:
            return None
        length = int.from_bytes(buf[:4], "big")
        if not MIN_PDU_LENGTH <= length <= MAX_PDU_LENGTH:
            command_id = int.from_bytes(buf[4:8], "big") if len(buf) >= 8 else 0
            sequence = int.from_bytes(buf[12:16], "big") if len(buf) >= 16 else 0
            self._lost = RemoteProtocolError(
                f"command_length {length} outside {MIN_PDU_LENGTH}..{MAX_PDU_LENGTH}",
                status=Status.ESME_RINVCMDLEN,
                sequence=sequence,
                command_id=command_id,
                fatal=True,
            )
            raise self._lost
        if len(buf) < length:
            return None
        frame = bytes(buf[:length])
        del buf[:length]
        return frame


class BindState(Enum):
    OPEN = "open"
    BOUND_TX = "bound_tx"
    BOUND_RX = "bound_rx"
    BOUND_TRX = "bound_trx"
    UNBOUND = "unbound"
    CLOSED = "closed"


Role = Literal["esme", "smsc"]

_OPEN = frozenset({BindState.OPEN})
_TX = frozenset({BindState.BOUND_TX, BindState.BOUND_TRX})
_RX = frozenset({BindState.BOUND_RX, BindState.BOUND_TRX})
_BOUND = _TX | _RX
_LINK = _OPEN | _BOUND  # enquire_link is harmless before binding; many SMSCs send it then

#: SMPP 3.4 section 2.3: the requests each side may send, and in which states. Responses and
#: generic_nack are allowed in every state but CLOSED.
REQUESTS: Final[Mapping[str, Mapping[str, frozenset[BindState]]]] = {
    "esme": {
        "bind_transmitter": _OPEN,
        "bind_receiver": _OPEN,
        "bind_transceiver": _OPEN,
        "submit_sm": _TX,
        "submit_multi": _TX,
        "data_sm": _TX,
        "query_sm": _TX,
        "cancel_sm": _TX,
        "replace_sm": _TX,
        "unbind": _BOUND,
        "enquire_link": _LINK,
    },
    "smsc": {
        "outbind": _OPEN,
        "deliver_sm": _RX,
        "data_sm": _RX,
        "alert_notification": _RX,
        "unbind": _BOUND,
        "enquire_link": _LINK,
    },
}

_BOUND_BY: Final[Mapping[str, BindState]] = {
    "bind_transmitter_resp": BindState.BOUND_TX,
    "bind_receiver_resp": BindState.BOUND_RX,
    "bind_transceiver_resp": BindState.BOUND_TRX,
}
_BINDS: Final = frozenset({"bind_transmitter", "bind_receiver", "bind_transceiver"})


class SmppConnection:
    """One end of one SMPP connection, h11-style: feed bytes, pull events, send PDUs as bytes."""

    def __init__(self, role: Role) -> None:
        if role not in REQUESTS:
            raise ValueError(f"role must be 'esme' or 'smsc', not {role!r}")
        self.role: Role = role
        self.peer_role: Role = "smsc" if role == "esme" else "esme"
        self.state = BindState.OPEN
        self._framer = Framer()
        self._sequence = 0
        self.last_sequence = 0
        """The sequence number of the last PDU :meth:`send` encoded."""

    def next_sequence(self) -> int:
        """1, 2, ... 0x7FFFFFFF, then 1 again."""
        self._sequence = 1 if self._sequence >= MAX_SEQUENCE else self._sequence + 1
        return self._sequence

    def receive_data(self, data: bytes) -> None:
        self._framer.feed(data)

    def next_event(self) -> Pdu | ProtocolError | None:
        """The next PDU, an error event for a malformed or misplaced one, or None for "need data".

        After a fatal error (framing lost) the state is CLOSED and only None follows.
        """
        if self.state is BindState.CLOSED:
            return None
        try:
            frame = self._framer.next_frame()
        except RemoteProtocolError as exc:
            self.state = BindState.CLOSED
            return exc
        if frame is None:
            return None
        try:
            pdu = decode(frame)
        except RemoteProtocolError as exc:
            return exc
        refusal = self._check(pdu, self.peer_role)
        if refusal is not None:
            return RemoteProtocolError(
                f"{pdu.command} not allowed from the {self.peer_role} in state {self.state.value}",
                status=refusal,
                sequence=pdu.sequence,
                command_id=pdu.command_id,
            )
        self._advance(pdu)
        return pdu

    def send(self, pdu: Pdu) -> bytes:
        """Encode ``pdu``, numbering a request whose sequence is 0; enforce the bind-state table."""
        if self.state is BindState.CLOSED:
            raise LocalProtocolError("connection is closed", status=Status.ESME_RINVBNDSTS)
        if not pdu.is_response and pdu.sequence == 0:
            pdu = replace(pdu, sequence=self.next_sequence())
        refusal = self._check(pdu, self.role)
        if refusal is not None:
            raise LocalProtocolError(
                f"{self.role} may not send {pdu.command} in state {self.state.value}",
                status=refusal,
                sequence=pdu.sequence,
                command_id=pdu.command_id,
            )
        data = encode(pdu)
        self.last_sequence = pdu.sequence
        self._advance(pdu)
        return data

    def nack_for(self, error: ProtocolError) -> bytes:
        """The answer to a malformed PDU: ``<cmd>_resp`` with the status for a known request,
        ``generic_nack`` for an unknown command id, a bad length or anything else."""
        name = COMMAND_NAMES.get(error.command_id)
        resp_id = COMMAND_IDS.get(f"{name}_resp") if name is not None else None
        generic = (
            resp_id is None
            or error.command_id & RESPONSE_BIT
            or error.status in (Status.ESME_RINVCMDLEN, Status.ESME_RINVCMDID)
        )
        command_id = COMMAND_IDS["generic_nack"] if generic or resp_id is None else resp_id
        return HEADER.pack(16, command_id, error.status, error.sequence & 0xFFFFFFFF)

    def close(self) -> None:
        """The transport is gone; nothing more is sent or received."""
        self.state = BindState.CLOSED

    def _check(self, pdu: Pdu, sender: Role) -> int | None:
        """None if ``sender`` may send ``pdu`` now, else the status to refuse it with."""
        if pdu.is_response:
            return None
        allowed = REQUESTS[sender].get(pdu.command)
        if allowed is not None and self.state in allowed:
            return None
        if pdu.command in _BINDS and self.state in _BOUND:
            return Status.ESME_RALYBND
        return Status.ESME_RINVBNDSTS

    def _advance(self, pdu: Pdu) -> None:
        cmd = pdu.command
        if cmd in _BOUND_BY:
            if pdu.status == Status.ESME_ROK and self.state is BindState.OPEN:
                self.state = _BOUND_BY[cmd]
        elif cmd in ("unbind", "unbind_resp"):
            self.state = BindState.UNBOUND
