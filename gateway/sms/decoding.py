"""SMPP short_message octets → text: parse the UDH, pick the codec, decode.

:func:`split_short_message` removes the UDH (when esm_class has UDHI) and returns the body in a
normal form — GSM-7 always as one septet per octet — so
:class:`gateway.sms.reassembly.Reassembler` can join bodies before decoding (which also heals an
escape or surrogate pair a sender split across parts); :func:`decode_short_message` does both
steps for a single message. The way out is :mod:`gateway.sms.text`.
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.sms.gsm import TextDecodeError, decode_septets, fill_bits_after_udh, unpack_septets

__all__ = [
    "IEI_CONCAT_8",
    "IEI_CONCAT_16",
    "Body",
    "Udh",
    "UdhError",
    "codec_for",
    "decode_body",
    "decode_short_message",
    "parse_udh",
    "split_body",
    "split_short_message",
]

IEI_CONCAT_8 = 0x00
IEI_CONCAT_16 = 0x08


class UdhError(TextDecodeError):
    """UDHI is set but the user data header is malformed."""


@dataclass(frozen=True, slots=True)
class Udh:
    """A parsed user data header. ``ref``/``total``/``seq`` come from a valid concatenation IE
    (0x00 or 0x08) and are None otherwise; every IE is kept in ``elements`` in order."""

    elements: tuple[tuple[int, bytes], ...]
    ref: int | None = None
    total: int | None = None
    seq: int | None = None
    ref_bits: int = 0  # 8 or 16 when a concatenation IE is present

    @property
    def length(self) -> int:
        """Octets of the header on the wire, the UDHL octet included."""
        return 1 + sum(2 + len(value) for _, value in self.elements)

    @property
    def is_concatenated(self) -> bool:
        return self.total is not None


@dataclass(frozen=True, slots=True)
class Body:
    """A received short message split into its UDH and a body ready to decode with ``codec``."""

    udh: Udh | None
    codec: str  # "gsm" (one septet per octet), or a Python codec name
    data: bytes


def parse_udh(data: bytes) -> tuple[Udh, bytes]:
    """Split ``data`` into its user data header and the rest; raises :class:`UdhError`.

    A concatenation IE with total 0, sequence 0 or sequence > total is kept in ``elements`` but
    not reported as concatenation (TS 23.040 9.2.3.24.1: the receiver ignores it).
    """
    if not data:
        raise UdhError("UDHI set but short_message is empty")
    udhl = data[0]
    if udhl + 1 > len(data):
        raise UdhError(f"UDH length {udhl} runs past the {len(data)}-octet message")
    header, rest = data[1 : 1 + udhl], data[1 + udhl :]
    elements: list[tuple[int, bytes]] = []
    i = 0
    while i < len(header):
        if i + 2 > len(header):
            raise UdhError("truncated information element in UDH")
        iei, iedl = header[i], header[i + 1]
        if i + 2 + iedl > len(header):
            raise UdhError(f"information element 0x{iei:02X} runs past the UDH")
        elements.append((iei, bytes(header[i + 2 : i + 2 + iedl])))
        i += 2 + iedl
    ref = total = seq = None
    bits = 0
    for iei, value in elements:
        if iei == IEI_CONCAT_8 and len(value) == 3:
            r, t, s = value[0], value[1], value[2]
            b = 8
        elif iei == IEI_CONCAT_16 and len(value) == 4:
            r, t, s = (value[0] << 8) | value[1], value[2], value[3]
            b = 16
        else:
            continue
        if t >= 1 and 1 <= s <= t:
            ref, total, seq, bits = r, t, s, b
    return Udh(tuple(elements), ref, total, seq, bits), rest


_SMPP_CODECS: Mapping[int, str] = {
    0x00: "gsm",
    0x01: "ascii",
    0x03: "latin-1",
    0x06: "iso8859-5",
    0x07: "iso8859-8",
    0x08: "utf-16-be",
    0x0A: "iso2022-jp",
    0x0E: "euc-kr",
    0x0F: "gsm",  # reserved in SMPP; USSD gateways pass on the CBS "GSM-7, no language"
}


def codec_for(data_coding: int) -> str:
    """The codec for a data_coding: ``"gsm"`` or a Python codec name; unknown → latin-1.

    SMPP values 0x00-0x0F first, then the GSM 03.38 coding groups for 0x10 and up (general,
    auto-deletion, message waiting, and the 0xF0 data coding/message class group).
    """
    if data_coding < 0x10:
        return _SMPP_CODECS.get(data_coding, "latin-1")
    group = data_coding >> 4
    if group <= 0x7:  # general data coding / automatic deletion
        if data_coding & 0x20:  # compressed
            return "latin-1"
        alphabet = (data_coding >> 2) & 0x03
        return {0: "gsm", 2: "utf-16-be"}.get(alphabet, "latin-1")
    if group in (0xC, 0xD):
        return "gsm"
    if group == 0xE:
        return "utf-16-be"
    if group == 0xF:
        return "latin-1" if data_coding & 0x04 else "gsm"
    return "latin-1"


def split_short_message(data: bytes, data_coding: int, udhi: bool, *, packed: bool = False) -> Body:
    """Remove the UDH (when ``udhi``) and bring the body into a joinable form.

    GSM-7 bodies come back one septet per octet: packed ones (``packed=True``) are unpacked with
    the fill bits after the UDH; an unpacked "GSM" body with octets above 0x7F cannot be GSM-7 and
    is read as Latin-1, which some SMSCs use as their default alphabet.
    """
    return Body(*split_body(data, data_coding, udhi, packed))


def split_body(
    data: bytes, data_coding: int, udhi: bool, packed: bool = False
) -> tuple[Udh | None, str, bytes]:
    """:func:`split_short_message` as a plain tuple (udh, codec, data), for the per-PDU paths
    that take it apart at once (no record built and dropped per message)."""
    udh: Udh | None = None
    rest = bytes(data)
    if udhi:
        udh, rest = parse_udh(rest)
    codec = codec_for(data_coding)
    if codec == "gsm":
        if packed:
            fill = fill_bits_after_udh(udh.length) if udh else 0
            rest = unpack_septets(rest, fill)
        elif not rest.isascii():  # an octet above 0x7F
            codec = "latin-1"
    return udh, codec, rest


def decode_body(data: bytes, codec: str) -> str:
    """Octets → text for a codec from :func:`codec_for`; bad octets become U+FFFD, never raises."""
    if codec == "gsm":
        return decode_septets(data)
    try:
        return codecs.decode(data, codec, "replace")
    except LookupError:  # a codec missing from this Python build
        return data.decode("latin-1")


def decode_short_message(
    data: bytes, data_coding: int, udhi: bool, *, packed: bool = False
) -> tuple[Udh | None, str]:
    """Decode one received short_message (or message_payload) into its UDH and text.

    Raises only :class:`UdhError` (a :class:`TextDecodeError`), for a malformed UDH; octets that
    are not valid in their alphabet decode to U+FFFD rather than fail.
    """
    udh, codec, body = split_body(data, data_coding, udhi, packed)
    return udh, decode_body(body, codec)
