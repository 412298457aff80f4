"""Reassembling what an ESME submits into the logical messages a handset would show.

A long text arrives in one of three shapes: parts carrying a concatenation UDH (8- or 16-bit
reference), parts carrying the SAR TLVs, or one PDU with ``message_payload``. The simulator keeps
the SMSC message id of every part, so it collects parts itself; headers and character sets are
read by :mod:`gateway.sms.text` (shared with the gateway).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.smpp.pdu import ESM_UDHI
from gateway.sms.decoding import Body, UdhError, codec_for, decode_body, split_short_message

#: Parts of an incomplete message are forgotten after this many seconds (as a handset does).
DEFAULT_TIMEOUT = 120.0


@dataclass(frozen=True, slots=True)
class Logical:
    """A complete logical message: text, how many parts, their ids, how it was concatenated."""

    source: str
    destination: str
    text: str
    parts: int
    data_coding: int
    message_ids: tuple[str, ...]
    concatenation: str | None


@dataclass(slots=True)
class _Pending:
    total: int
    data_coding: int
    codec: str
    first_seen: float
    bodies: dict[int, bytes] = field(default_factory=dict)
    ids: dict[int, str] = field(default_factory=dict)


def split_part(params: Mapping[str, Any]) -> tuple[tuple[str, int, int, int] | None, Body]:
    """The concatenation key ``(scheme, ref, total, seq)`` (None if single) and the body."""
    payload = params.get("message_payload")
    data = bytes(payload if payload else (params.get("short_message") or b""))
    data_coding = int(params.get("data_coding", 0))
    udhi = bool(int(params.get("esm_class", 0)) & ESM_UDHI)
    try:
        body = split_short_message(data, data_coding, udhi)
    except UdhError:  # an SMSC passes a broken header on; the handset shows what it can
        body = split_short_message(data, data_coding, False)
    udh = body.udh
    if udh is not None and udh.total is not None and udh.ref is not None and udh.seq is not None:
        return ("udh16" if udh.ref_bits == 16 else "udh", udh.ref, udh.total, udh.seq), body
    total = params.get("sar_total_segments")
    if total is not None and params.get("sar_msg_ref_num") is not None:
        seq = int(params.get("sar_segment_seqnum", 1))
        return ("sar", int(params["sar_msg_ref_num"]), int(total), seq), body
    return None, body


class MtAssembler:
    """Collects parts per (source, destination, reference) and yields a :class:`Logical`."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._timeout = timeout
        self._pending: dict[tuple[str, str, str, int, int], _Pending] = {}

    def add(
        self,
        params: Mapping[str, Any],
        message_id: str,
        now: float,
        split: tuple[tuple[str, int, int, int] | None, Body] | None = None,
    ) -> Logical | None:
        """Add one part (``split``: :func:`split_part` of it, if the caller has it already)."""
        source = str(params.get("source_addr", ""))
        destination = str(params.get("destination_addr", ""))
        data_coding = int(params.get("data_coding", 0))
        key, body = split or split_part(params)
        if key is None or key[2] <= 1:
            how = "payload" if params.get("message_payload") else None
            text = decode_body(body.data, body.codec)
            return Logical(source, destination, text, 1, data_coding, (message_id,), how)
        scheme, ref, total, seq = key
        slot = (source, destination, scheme, ref, total)
        pending = self._pending.get(slot)
        if pending is None:
            pending = self._pending[slot] = _Pending(total, data_coding, body.codec, now)
        pending.bodies[seq] = body.data
        pending.ids[seq] = message_id
        if len(pending.bodies) < total:
            return None
        del self._pending[slot]
        order = sorted(pending.bodies)
        # Join the bodies before decoding: heals an escape or surrogate pair split across parts.
        text = decode_body(b"".join(pending.bodies[i] for i in order), pending.codec)
        ids = tuple(pending.ids[i] for i in order)
        return Logical(source, destination, text, total, pending.data_coding, ids, scheme)

    def expire(self, now: float) -> int:
        """Forget incomplete messages older than the timeout; returns how many."""
        old = [k for k, p in self._pending.items() if now - p.first_seen > self._timeout]
        for k in old:
            del self._pending[k]
        return len(old)


def body_codec(data: bytes, data_coding: int) -> str:
    """The codec of a body without UDH, as :func:`gateway.sms.text.split_short_message` picks it.

    A "GSM" body with octets above 0x7F cannot be GSM-7 (one septet per octet) and is read as
    Latin-1; ``bytes.isascii`` checks that in C instead of a loop over the octets.
    """
    codec = codec_for(data_coding)
    if codec == "gsm" and not data.isascii():
        return "latin-1"
    return codec
