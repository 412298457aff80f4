"""The live PDU trace: every PDU that crosses the simulator's binds, in a bounded ring.

Theory of operation. A session hands each whole frame it reads and each PDU it writes to
:meth:`PduTrace.record` as raw bytes: one small record appended to a ring of fixed size, nothing
decoded, so tracing costs the hot path an append. A record is decoded by the shared codec only
when someone reads it (``GET /api/v1/pdus`` or a live subscriber), and the decoded view is kept
on the record. A response names no phone number; when read it takes the number of its request
(same bind, same sequence, the other direction) if that is still in the ring. Bind requests are
kept with their password blanked, so neither the fields nor the hex show it.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from gateway.smpp.codec import decode
from gateway.smpp.errors import RemoteProtocolError
from gateway.smpp.pdu import (
    COMMAND_NAMES,
    ESM_UDHI,
    RESPONSE_BIT,
    MessageState,
    Pdu,
    Status,
    UssdOp,
)
from gateway.smpp.schema import TLVS
from gateway.sms.decoding import UdhError, decode_body, split_short_message

#: PDUs kept by default; the oldest are forgotten first.
DEFAULT_SIZE = 2000
#: Records a live subscriber may lag behind before it is cut off (it reconnects and re-lists).
SUBSCRIBER_BACKLOG = 1000
#: How far back a response looks for its request.
REQUEST_LOOKBACK = 1024
_BIND_REQUESTS = frozenset({1, 2, 9})  # bind_receiver, bind_transmitter, bind_transceiver
#: Every TLV the codec knows by name (:data:`gateway.smpp.schema.TLVS`).
TLV_NAMES = frozenset(TLVS)
_MEANINGS: dict[str, type[UssdOp] | type[MessageState]] = {
    "ussd_service_op": UssdOp,
    "message_state": MessageState,
}


@dataclass(slots=True)
class BindInfo:
    """One connection to the simulator: filled in as it binds (``mode``: tx, rx or trx)."""

    id: int
    peer: str
    system_id: str | None = None
    mode: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "peer": self.peer, "system_id": self.system_id, "mode": self.mode}


#: One traced PDU: ``(id, at, bind, direction, data)``, a plain tuple because one is built per
#: PDU on the hot path. ``direction`` is seen from the simulator: ``"in"`` the ESME sent it,
#: ``"out"`` the simulator did; ``at`` is the wall clock (seconds).
Traced = tuple[int, float, BindInfo, str, bytes]


class PduTrace:
    """The ring of traced PDUs plus fan-out of new ones to live subscribers."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if size < 0:
            raise ValueError(f"trace size must be 0 (off) or more, got {size}")
        self.size = size
        self._ring: deque[Traced] = deque(maxlen=size or 1)
        self._views: dict[int, dict[str, Any]] = {}  # decoded on read, oldest first
        self._ids = itertools.count(1)
        self._bind_ids = itertools.count(1)
        self._subscribers: set[asyncio.Queue[Traced | None]] = set()

    def new_bind(self, peer: str) -> BindInfo:
        return BindInfo(next(self._bind_ids), peer)

    def record(self, bind: BindInfo, direction: str, data: bytes) -> None:
        """Keep one whole PDU as read or written (callers pass one PDU per call)."""
        if not self.size:
            return
        if data[7] in _BIND_REQUESTS and not data[4] | data[5] | data[6]:
            data = _blank_password(data)
        traced = (next(self._ids), time.time(), bind, direction, data)
        self._ring.append(traced)
        if self._subscribers:
            self._publish(traced)

    def records(self) -> list[Traced]:
        return list(self._ring)

    def clear(self) -> None:
        self._ring.clear()
        self._views.clear()

    def view(self, traced: Traced) -> dict[str, Any]:
        """The decoded form of ``traced`` (computed once while it is in the ring)."""
        view = self._views.get(traced[0])
        if view is None:
            view = describe(traced)
            if view["msisdn"] is None and view["response"]:
                view["msisdn"] = self._request_number(traced)
            self._views[traced[0]] = view
            self._forget_views()
        return view

    def _forget_views(self) -> None:
        if not self._ring or len(self._views) <= 2 * len(self._ring):
            return  # pruned in batches: one pass per ring's worth of new views
        oldest = self._ring[0][0]
        for key in [k for k in self._views if k < oldest]:
            del self._views[key]

    def views(
        self, *, msisdn: str | None = None, bind: str | None = None, after: int = 0
    ) -> list[dict[str, Any]]:
        """Decoded PDUs, oldest first, those matching the filters (see :func:`matches`)."""
        out = []
        for traced in list(self._ring):
            if traced[0] <= after:
                continue
            view = self.view(traced)
            if matches(view, msisdn, bind):
                out.append(view)
        return out

    def _request_number(self, response: Traced) -> str | None:
        _, _, bind, direction, data = response
        sequence = data[12:16]
        request_id = bytes((data[4] & 0x7F,)) + data[5:8]
        for scanned, traced in enumerate(reversed(self._ring)):
            if scanned > REQUEST_LOOKBACK:
                break
            other = traced[4]
            if (
                traced[2] is bind
                and traced[3] != direction
                and other[12:16] == sequence
                and other[4:8] == request_id
            ):
                number = self.view(traced)["msisdn"]
                return str(number) if number is not None else None
        return None

    # -- live subscribers ----------------------------------------------------------------------

    def subscribe(self, backlog: int = SUBSCRIBER_BACKLOG) -> asyncio.Queue[Traced | None]:
        """A queue of every new record; ``None`` means "you fell behind" or "the trace closed"."""
        queue: asyncio.Queue[Traced | None] = asyncio.Queue(backlog + 1)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Traced | None]) -> None:
        self._subscribers.discard(queue)

    def close(self) -> None:
        for queue in list(self._subscribers):
            self._end(queue)

    def _publish(self, traced: Traced) -> None:
        for queue in list(self._subscribers):
            if queue.qsize() >= queue.maxsize - 1:
                self._end(queue)
            else:
                queue.put_nowait(traced)

    def _end(self, queue: asyncio.Queue[Traced | None]) -> None:
        self.unsubscribe(queue)
        while queue.full():
            queue.get_nowait()
        queue.put_nowait(None)


def matches(view: dict[str, Any], msisdn: str | None, bind: str | None) -> bool:
    """``msisdn``: the handset's number or either address; ``bind``: the bind's id, its
    system_id or its peer address."""
    if msisdn is not None:
        fields = view["fields"]
        numbers = (view["msisdn"], fields.get("source_addr"), fields.get("destination_addr"))
        if msisdn not in numbers:
            return False
    if bind is not None:
        b = view["bind"]
        if bind not in (str(b["id"]), b["system_id"], b["peer"]):
            return False
    return True


def describe(traced: Traced) -> dict[str, Any]:
    """Decode one record into JSON-ready fields: the header, mandatory fields, TLVs by name,
    the text of short_message / message_payload, and the hex."""
    ident, at, bind, direction, data = traced
    command_id = int.from_bytes(data[4:8], "big")
    status = int.from_bytes(data[8:12], "big")
    view: dict[str, Any] = {
        "id": ident,
        "at": at,
        "direction": direction,
        "bind": bind.as_dict(),
        "command": COMMAND_NAMES.get(command_id, f"0x{command_id:08x}"),
        "command_id": command_id,
        "sequence": int.from_bytes(data[12:16], "big"),
        "status": status,
        "status_name": _status_name(status),
        "response": bool(command_id & RESPONSE_BIT),
        "length": len(data),
        "msisdn": None,
        "fields": {},
        "tlvs": {},
        "meaning": {},
        "text": None,
        "error": None,
        "hex": data.hex(),
    }
    try:
        pdu = decode(data)
    except RemoteProtocolError as exc:
        view["error"] = str(exc)
        return view
    _fill(view, pdu, direction)
    return view


def _fill(view: dict[str, Any], pdu: Pdu, direction: str) -> None:
    fields, tlvs, meaning = view["fields"], view["tlvs"], view["meaning"]
    for name, value in pdu.params.items():
        if name in ("short_message", "message_payload"):
            continue
        if name == "password":
            value = "*" * len(str(value))
        elif isinstance(value, bytes | bytearray):
            value = int.from_bytes(value, "big") if name == "its_session_info" else value.hex()
        (tlvs if name in TLV_NAMES else fields)[name] = value
        kind = _MEANINGS.get(name)
        if kind is not None and isinstance(value, int):
            try:
                meaning[name] = kind(value).name
            except ValueError:
                meaning[name] = "unknown"
    for tag, value in pdu.extra_tlvs:
        tlvs[f"0x{tag:04x}"] = value.hex()
    its = tlvs.get("its_session_info")
    if isinstance(its, int):
        meaning["its_session_info"] = f"session {its >> 8}, unit {(its & 0xFF) >> 1}" + (
            ", end" if its & 1 else ""
        )
    payload = pdu.get("message_payload")
    body = payload if payload else pdu.get("short_message")
    if isinstance(body, bytes | bytearray) and body:
        data_coding = int(pdu.get("data_coding", 0))
        udhi = bool(int(pdu.get("esm_class", 0)) & ESM_UDHI)
        try:
            split = split_short_message(bytes(body), data_coding, udhi)
        except UdhError:
            split = split_short_message(bytes(body), data_coding, False)
        view["text"] = decode_body(split.data, split.codec)
        if split.udh is not None and split.udh.total is not None:
            meaning["udh"] = f"part {split.udh.seq} of {split.udh.total}, ref {split.udh.ref}"
        if payload:
            tlvs["message_payload"] = f"{len(payload)} octets"
        else:
            fields["short_message"] = f"{len(body)} octets"
    if "sar_total_segments" in tlvs:
        meaning["sar"] = (
            f"part {tlvs.get('sar_segment_seqnum')} of {tlvs['sar_total_segments']},"
            f" ref {tlvs.get('sar_msg_ref_num')}"
        )
    number = fields.get("destination_addr" if direction == "in" else "source_addr")
    view["msisdn"] = number or None


def _status_name(status: int) -> str:
    try:
        return Status(status).name
    except ValueError:
        return f"0x{status:08x}"


def _blank_password(data: bytes) -> bytes:
    """A bind request with its password replaced by as many ``*``."""
    end_id = data.find(b"\0", 16)
    end_password = data.find(b"\0", end_id + 1) if end_id >= 0 else -1
    if end_password < 0:
        return data
    return data[: end_id + 1] + b"*" * (end_password - end_id - 1) + data[end_password:]
