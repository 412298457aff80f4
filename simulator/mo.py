"""Splitting a handset's text into deliver_sm parts, as a handset and its SMSC would.

By default a handset picks GSM-7 when every character allows it and UCS-2 otherwise (Polish
letters), and splits long texts with a concatenation UDH: that is :func:`gateway.sms.text.
encode_message` with the ``"ucs2"`` policy. A test may force the data_coding to see how the ESME
copes with IA5 (1), Latin-1 (3) or UCS-2 (8) for text that would not need it.
"""

from __future__ import annotations

from typing import Literal, cast

from gateway.smpp.pdu import ESM_UDHI
from gateway.sms.text import Part, encode_message

LongMode = Literal["udh", "udh16", "sar", "payload"]
_CODECS = {1: "ascii", 3: "latin-1", 8: "utf-16-be"}


class MoEncodingError(ValueError):
    """The text cannot be sent with the data_coding or concatenation asked for."""


def handset_parts(text: str, data_coding: int | None, *, long: str, ref: int) -> list[Part]:
    if long not in ("udh", "udh16", "sar", "payload"):
        raise MoEncodingError(f"long must be udh, udh16, sar or payload, got {long!r}")
    mode = cast(LongMode, long)
    if data_coding is None:
        return encode_message(text, policy="ucs2", long=mode, ref=ref)
    if data_coding == 0:
        return encode_message(text, policy="transliterate", long=mode, ref=ref)
    codec = _CODECS.get(data_coding)
    if codec is None:
        raise MoEncodingError(f"data_coding {data_coding} is not 0, 1, 3 or 8")
    try:
        units = [ch.encode(codec) for ch in text]
    except UnicodeEncodeError as exc:
        raise MoEncodingError(f"the text cannot be written with data_coding {data_coding}") from exc
    return _split(units, data_coding, mode, ref)


def _split(units: list[bytes], data_coding: int, long: LongMode, ref: int) -> list[Part]:
    whole = b"".join(units)
    if long == "payload":
        return [Part(b"", data_coding, 0, {"message_payload": whole})]
    if len(whole) <= 140:
        return [Part(whole, data_coding)]
    budget = 133 if long == "udh16" else 134
    chunks: list[bytes] = []
    current = b""
    for unit in units:  # whole characters only: a surrogate pair never straddles two parts
        if len(current) + len(unit) > budget:
            chunks.append(current)
            current = b""
        current += unit
    chunks.append(current)
    total = len(chunks)
    if total > 255:
        raise MoEncodingError(f"the text needs {total} parts, at most 255 are possible")
    parts = []
    for seq, chunk in enumerate(chunks, start=1):
        if long == "udh":
            udh = bytes((5, 0x00, 3, ref & 0xFF, total, seq))
            parts.append(Part(udh + chunk, data_coding, ESM_UDHI))
        elif long == "udh16":
            r = ref & 0xFFFF
            udh = bytes((6, 0x08, 4, r >> 8, r & 0xFF, total, seq))
            parts.append(Part(udh + chunk, data_coding, ESM_UDHI))
        else:
            sar = {
                "sar_msg_ref_num": ref & 0xFFFF,
                "sar_total_segments": total,
                "sar_segment_seqnum": seq,
            }
            parts.append(Part(chunk, data_coding, 0, sar))
    return parts
