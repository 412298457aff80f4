"""Byte-level fast paths of the two hot loops: the ESME link and the simulated SMSC.

Almost all traffic is submit_sm out, submit_sm_resp back and, on the SMSC side, a receipt
deliver_sm and its deliver_sm_resp. Building a :class:`~gateway.smpp.pdu.Pdu` and running it
through :func:`gateway.smpp.codec.encode` / :func:`~gateway.smpp.codec.decode` costs more than
everything else either side does per message, so these functions read and write those few PDUs
straight from and into bytes:

- the ESME numbers pre-encoded submit_sm (:func:`gateway.smpp.fast.submit_sm_template`) with
  :func:`numbered` / :func:`numbered_one` and reads a plain submit_sm_resp with
  :func:`read_header` and :func:`plain_message_id`;
- the SMSC answers with :func:`submit_sm_resp`, sends receipts packed once by
  :func:`receipt_body` and framed by :func:`deliver_sm`, and recognises the PDUs it can skip the
  bind-state table for with :func:`is_submit_sm` and :func:`is_bare_deliver_sm_resp`.

They only take the happy path: anything else returns ``None`` (or False) and the caller takes the
codec's path, which raises the right error. ``tests/gateway/smpp/test_wire.py`` compares every
one with the codec.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Final

from gateway.smpp.pdu import COMMAND_IDS, ESM_DELIVERY_RECEIPT, HEADER

__all__ = [
    "DELIVER_SM",
    "DELIVER_SM_RESP",
    "SUBMIT_SM",
    "SUBMIT_SM_RESP",
    "deliver_sm",
    "is_bare_deliver_sm_resp",
    "is_submit_sm",
    "numbered",
    "numbered_one",
    "plain_message_id",
    "read_header",
    "receipt_body",
    "submit_sm_resp",
]

SUBMIT_SM: Final = COMMAND_IDS["submit_sm"]
SUBMIT_SM_RESP: Final = COMMAND_IDS["submit_sm_resp"]
DELIVER_SM: Final = COMMAND_IDS["deliver_sm"]
DELIVER_SM_RESP: Final = COMMAND_IDS["deliver_sm_resp"]

#: ``read_header(buffer, offset)`` → (command_length, command_id, command_status, sequence).
read_header: Final = HEADER.unpack_from

_MAX_ADDR: Final = 20
_MAX_SM: Final = 254
_MAX_ID: Final = 64
_SEQUENCE_AT: Final = 12
_SUBMIT_SM_ID: Final = SUBMIT_SM.to_bytes(4, "big")
# length 17 (an empty message_id), command deliver_sm_resp
_BARE_DELIVER_SM_RESP: Final = (17).to_bytes(4, "big") + DELIVER_SM_RESP.to_bytes(4, "big")
# deliver_sm mandatory fields (service_type "", esm_class receipt, everything else 0), then the
# TLVs message_state (0x0427, 1 octet) and receipted_message_id (0x001E, C-string) in the
# codec's wire order.
_RECEIPT: Final = (
    b"\x00%c%c%s\x00%c%c%s\x00%c\x00\x00\x00\x00\x00\x00\x00\x00%c%s"
    b"\x04\x27\x00\x01%c\x00\x1e%s%s\x00"
)
_pack_header = HEADER.pack
_SEQUENCE_PACK_INTO: Final = struct.Struct(">L").pack_into  # sequence_number, header octets 12..16


def numbered_one(template: bytes, sequence: int) -> bytearray:
    """:func:`numbered` for one template (a window refill of one, the common case)."""
    out = bytearray(template)
    _SEQUENCE_PACK_INTO(out, _SEQUENCE_AT, sequence)
    return out


def numbered(templates: Sequence[bytes], start: int, sequences: Sequence[int]) -> bytearray:
    """``templates[start:start + len(sequences)]`` (whole PDUs with sequence 0) joined, each
    carrying its number from ``sequences``: the bytes :func:`~gateway.smpp.codec.encode` makes
    for the same PDUs so numbered."""
    count = len(sequences)
    stop = start + count
    out = bytearray(templates[start] if count == 1 else b"".join(templates[start:stop]))
    pack_into = _SEQUENCE_PACK_INTO
    offset = _SEQUENCE_AT
    for index, sequence in enumerate(sequences, start):
        pack_into(out, offset, sequence)
        offset += len(templates[index])
    return out


def plain_message_id(buffer: bytes | bytearray, start: int, end: int) -> str | None:
    """The message_id of the response PDU ``buffer[start:end]`` when its body is that C-string
    alone (or empty); None for anything else (TLVs, no NUL, an over-long id): decode it."""
    if end - start == 16:
        return ""
    nul = buffer.find(0, start + 16, end)
    if nul != end - 1 or nul - start > 16 + _MAX_ID:
        return None
    return buffer[start + 16 : nul].decode("latin-1")


def is_submit_sm(frame: bytes) -> bool:
    """Whether the whole PDU ``frame`` says it is a submit_sm."""
    return frame[4:8] == _SUBMIT_SM_ID


def is_bare_deliver_sm_resp(frame: bytes) -> bool:
    """Whether the whole PDU ``frame`` is a deliver_sm_resp with an empty message_id and no TLVs
    (any status): then its header says everything."""
    return frame[:8] == _BARE_DELIVER_SM_RESP and frame[16] == 0


def submit_sm_resp(sequence: int, message_id: str) -> bytes | None:
    """An accepted submit_sm's response, or None when ``message_id`` needs the codec's checks."""
    if not message_id.isascii():
        return None
    mid = message_id.encode("ascii")
    if len(mid) > _MAX_ID or b"\x00" in mid or not 0 <= sequence <= 0xFFFFFFFF:
        return None
    return _pack_header(17 + len(mid), SUBMIT_SM_RESP, 0, sequence) + mid + b"\x00"


def receipt_body(
    *,
    source_ton: int,
    source_npi: int,
    source: str,
    dest_ton: int,
    dest_npi: int,
    destination: str,
    text: bytes,
    message_id: str,
    message_state: int,
) -> bytes | None:
    """The body (no header) of a receipt deliver_sm with data_coding 0, or None if unusual.

    Packed once: its sequence number is only known when the deliver_sm window lets it out
    (:func:`deliver_sm`)."""
    try:
        src = source.encode("latin-1")
        dst = destination.encode("latin-1")
        mid = message_id.encode("latin-1")
    except UnicodeError:
        return None
    if (
        len(src) > _MAX_ADDR
        or len(dst) > _MAX_ADDR
        or len(text) > _MAX_SM
        or len(mid) > _MAX_ID
        or b"\x00" in src + dst + mid
        or not 0 <= source_ton <= 255
        or not 0 <= source_npi <= 255
        or not 0 <= dest_ton <= 255
        or not 0 <= dest_npi <= 255
        or not 0 <= message_state <= 255
    ):
        return None
    return _RECEIPT % (
        source_ton,
        source_npi,
        src,
        dest_ton,
        dest_npi,
        dst,
        ESM_DELIVERY_RECEIPT,
        len(text),
        text,
        message_state,
        (len(mid) + 1).to_bytes(2, "big"),
        mid,
    )


def deliver_sm(sequence: int, body: bytes) -> bytes:
    """A deliver_sm frame around a body from :func:`receipt_body`."""
    return _pack_header(16 + len(body), DELIVER_SM, 0, sequence) + body
