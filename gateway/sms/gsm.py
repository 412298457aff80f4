"""GSM 03.38 (3GPP TS 23.038) default alphabet, its extension table, and 7-bit packing.

Our own table, not smpplib's: smpplib maps 0x5F to a backtick, but 0x5F is the section sign ``§``
(the underscore is 0x11), and the backtick is not in the alphabet at all.

A character of the extension table is sent as ESC (0x1B) and a second septet, so it costs two
septets; callers count with :func:`septet_cost` and must never split between the two.

SMPP ``data_coding`` 0 usually carries one septet per octet ("unpacked"); :func:`pack_septets` and
:func:`unpack_septets` exist for SMSCs that want the packed GSM form, including the fill bits that
align the first septet after a user data header.

The errors of the whole text layer live here, the lowest module of it; :mod:`gateway.sms.text`
re-exports them.
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from types import MappingProxyType

from backend.errors import Idea24Error


class TextError(Idea24Error):
    """Text could not be encoded or decoded for SMS/USSD."""


class TextEncodeError(TextError, ValueError):
    """The text cannot be sent as asked (unencodable character, too long, too many parts)."""


class TextDecodeError(TextError, ValueError):
    """Received octets are structurally invalid (e.g. a user data header running past the end)."""


ESC = 0x1B

#: The default alphabet, indexed by septet value. 0x1B is the escape to the extension table.
BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
assert len(BASIC_TABLE) == 128

#: The extension table: septet after ESC → character (form feed, ^ { } \\ [ ~ ] | €).
EXTENSION_TABLE: Mapping[int, str] = MappingProxyType(
    {
        0x0A: "\f",
        0x14: "^",
        0x28: "{",
        0x29: "}",
        0x2F: "\\",
        0x3C: "[",
        0x3D: "~",
        0x3E: "]",
        0x40: "|",
        0x65: "€",
    }
)

_BASIC_ENCODE: Mapping[str, int] = MappingProxyType(
    {ch: i for i, ch in enumerate(BASIC_TABLE) if i != ESC}
)
_EXT_ENCODE: Mapping[str, int] = MappingProxyType({ch: s for s, ch in EXTENSION_TABLE.items()})

#: Every character GSM-7 can carry, basic and extension.
GSM_CHARACTERS = frozenset(_BASIC_ENCODE) | frozenset(_EXT_ENCODE)


def septet_cost(ch: str) -> int | None:
    """Septets ``ch`` takes in GSM-7 (1 or 2), or None when GSM-7 cannot carry it."""
    if ch in _BASIC_ENCODE:
        return 1
    if ch in _EXT_ENCODE:
        return 2
    return None


def _unencodable(text: str) -> TextEncodeError:
    ch = next(c for c in text if c not in GSM_CHARACTERS)
    return TextEncodeError(f"{ch!r} (U+{ord(ch):04X}) is not in the GSM 03.38 alphabet")


def septet_length(text: str) -> int:
    """Septets the whole of ``text`` takes; raises TextEncodeError when it is not GSM-7."""
    return len(encode_septets(text))


# str.translate tables: the per-character work happens in C.
_ENCODE_TRANS: Mapping[int, str] = MappingProxyType(
    {ord(ch): chr(v) for ch, v in _BASIC_ENCODE.items()}
    | {ord(ch): "\x1b" + chr(s) for ch, s in _EXT_ENCODE.items()}
)
# The decoding as a charmap table, which the codecs module applies in one C loop (no dict
# look-up per character as in str.translate): 2.5x faster for a receipt's text.
_DECODE_TABLE = "".join(BASIC_TABLE[i & 0x7F] for i in range(256))
_charmap_decode = codecs.charmap_decode


# The encoding as a list indexed by code point, for str.translate: a dict makes translate raise
# and clear a KeyError inside for every character it does not map, a list that maps every code
# point up to the last GSM one does not. Characters GSM-7 lacks become U+FFFF, so a result that
# is all ASCII (every septet and ESC is) proves the text was GSM-7; code points past the list
# (IndexError: left as they are) are never ASCII.
_ENCODE_LIST: list[str] = [
    _ENCODE_TRANS.get(i, "\uffff") for i in range(max(map(ord, GSM_CHARACTERS)) + 1)
]


def septets_or_none(text: str) -> bytes | None:
    """:func:`encode_septets`, or None when GSM-7 cannot carry ``text`` (no exception, one pass).

    Non-ASCII text is checked against the alphabet first: that stops at the first character
    GSM-7 lacks (a Polish letter early in a UCS-2 reply) instead of translating the whole text.
    """
    if not text.isascii() and not GSM_CHARACTERS.issuperset(text):
        return None
    septets = text.translate(_ENCODE_LIST)
    return septets.encode("ascii") if septets.isascii() else None


def encode_septets(text: str) -> bytes:
    """GSM-7 unpacked: one septet per octet, extension characters as ESC + septet."""
    septets = septets_or_none(text)
    if septets is None:
        raise _unencodable(text)
    return septets


def decode_septets(septets: bytes) -> str:
    """Unpacked septets → text, as a handset shows them (TS 23.038 section 6.2.1.1).

    An ESC followed by a septet the extension table lacks shows the basic character; ESC ESC and a
    trailing ESC show a space. Values above 0x7F are masked to seven bits. Never raises.
    """
    if ESC not in septets and ESC | 0x80 not in septets:
        return _charmap_decode(septets, "strict", _DECODE_TABLE)[0]
    out: list[str] = []
    escaped = False
    for value in septets:
        septet = value & 0x7F
        if escaped:
            escaped = False
            if septet == ESC:
                out.append(" ")
            else:
                out.append(EXTENSION_TABLE.get(septet, BASIC_TABLE[septet]))
        elif septet == ESC:
            escaped = True
        else:
            out.append(BASIC_TABLE[septet])
    if escaped:
        out.append(" ")
    return "".join(out)


def fill_bits_after_udh(udh_octets: int) -> int:
    """Fill bits that align the first septet after a UDH of ``udh_octets`` (UDHL included)."""
    return (7 - (udh_octets * 8) % 7) % 7


def pack_septets(septets: bytes, fill_bits: int = 0) -> bytes:
    """Pack septets into octets, LSB first, after ``fill_bits`` zero bits (TS 23.038 6.1.2.1.1).

    When the last octet would leave seven spare bits, a CR is packed there (as 23.038 advises) so a
    receiver does not read an extra ``@``; a wanted final CR that ends on an octet boundary gets a
    second CR for the same reason. :func:`unpack_septets` drops the padding again.
    """
    if not 0 <= fill_bits <= 6:
        raise TextEncodeError(f"fill_bits must be 0..6, got {fill_bits}")
    bits = fill_bits + 7 * len(septets)
    if bits % 8 == 1 or (bits % 8 == 0 and septets.endswith(b"\r")):
        septets = septets + b"\r"
    acc = 0
    nbits = fill_bits
    out = bytearray()
    for septet in septets:
        acc |= (septet & 0x7F) << nbits
        nbits += 7
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc & 0xFF)
    return bytes(out)


def unpack_septets(data: bytes, fill_bits: int = 0, count: int | None = None) -> bytes:
    """Unpack packed GSM-7 octets into one septet per octet.

    SMPP gives octets, not a septet count, so without ``count`` a last septet that fills the last
    octet exactly is read as padding when it is CR (23.038's padding) or 0 (the zero bits most
    encoders leave, which would otherwise show as a stray ``@``). Never raises for any input.
    """
    available = max(0, (len(data) * 8 - fill_bits) // 7)
    n = available if count is None else min(count, available)
    value = int.from_bytes(data, "little") >> fill_bits
    out = bytes((value >> (7 * i)) & 0x7F for i in range(n))
    exact = (len(data) * 8 - fill_bits) % 7 == 0
    if count is None and exact and out and out[-1] in (0x0D, 0x00):
        out = out[:-1]
    return out
