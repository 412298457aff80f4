"""Wire bytes for the simulator's hot path: submit_sm_resp and receipt deliver_sm, pre-packed.

An SMSC under load answers every submit_sm with a submit_sm_resp and, when asked, sends a
receipt; building a :class:`~gateway.smpp.pdu.Pdu` and running it through
:func:`gateway.smpp.codec.encode` costs more than everything else the simulator does per message.
These functions write the same bytes directly, with the same field limits (the differential tests
in ``tests/simulator/test_fastpath.py`` compare them with the codec byte for byte). Anything outside
the happy path returns ``None`` and the caller takes the codec path, which raises the right error.

A receipt is packed once without its header (:func:`receipt_body`): its sequence number is only
known when the session's deliver_sm window lets it out (:func:`deliver_sm`).
"""

from __future__ import annotations

import struct
from typing import Final

from gateway.smpp.pdu import COMMAND_IDS, ESM_DELIVERY_RECEIPT
from gateway.sms.text import codec_for

__all__ = [
    "DELIVER_SM",
    "DELIVER_SM_RESP",
    "SUBMIT_SM",
    "body_codec",
    "deliver_sm",
    "receipt_body",
    "submit_sm_resp",
]

HEADER: Final = struct.Struct(">LLLL")
SUBMIT_SM: Final = COMMAND_IDS["submit_sm"]
SUBMIT_SM_RESP: Final = COMMAND_IDS["submit_sm_resp"]
DELIVER_SM: Final = COMMAND_IDS["deliver_sm"]
DELIVER_SM_RESP: Final = COMMAND_IDS["deliver_sm_resp"]

# deliver_sm mandatory fields (service_type "", esm_class receipt, everything else 0), then the
# TLVs message_state (0x0427, 1 octet) and receipted_message_id (0x001E, C-string) in the
# codec's wire order.
_RECEIPT: Final = (
    b"\x00%c%c%s\x00%c%c%s\x00%c\x00\x00\x00\x00\x00\x00\x00\x00%c%s"
    b"\x04\x27\x00\x01%c\x00\x1e%s%s\x00"
)
_MAX_ADDR: Final = 20
_MAX_SM: Final = 254
_MAX_ID: Final = 64
_pack_header = HEADER.pack


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
    """The body (no header) of a receipt deliver_sm with data_coding 0, or None if unusual."""
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


def body_codec(data: bytes, data_coding: int) -> str:
    """The codec of a body without UDH, as :func:`gateway.sms.text.split_short_message` picks it.

    A "GSM" body with octets above 0x7F cannot be GSM-7 (one septet per octet) and is read as
    Latin-1; ``bytes.isascii`` checks that in C instead of a loop over the octets.
    """
    codec = codec_for(data_coding)
    if codec == "gsm" and not data.isascii():
        return "latin-1"
    return codec
