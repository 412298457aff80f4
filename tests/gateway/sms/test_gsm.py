"""GSM 03.38 alphabet: the table itself, escapes, and 7-bit packing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.sms import gsm
from gateway.sms.gsm import (
    BASIC_TABLE,
    EXTENSION_TABLE,
    GSM_CHARACTERS,
    TextEncodeError,
    decode_septets,
    encode_septets,
    fill_bits_after_udh,
    pack_septets,
    septet_cost,
    septet_length,
    unpack_septets,
)


def test_every_basic_character_round_trips() -> None:
    for value, ch in enumerate(BASIC_TABLE):
        if value == gsm.ESC:
            continue
        assert encode_septets(ch) == bytes([value]), (hex(value), ch)
        assert decode_septets(bytes([value])) == ch


def test_every_extension_character_is_escape_plus_septet() -> None:
    assert sorted(EXTENSION_TABLE.values()) == sorted("\f^{}\\[~]|€")
    for septet, ch in EXTENSION_TABLE.items():
        assert encode_septets(ch) == bytes([0x1B, septet])
        assert decode_septets(bytes([0x1B, septet])) == ch
        assert septet_cost(ch) == 2


def test_0x5f_is_section_sign_and_underscore_is_0x11() -> None:
    # smpplib's table puts a backtick at 0x5F; TS 23.038 says §, and _ lives at 0x11.
    assert encode_septets("§") == b"\x5f"
    assert encode_septets("_") == b"\x11"
    assert decode_septets(b"\x5f\x11") == "§_"
    assert "`" not in GSM_CHARACTERS
    with pytest.raises(TextEncodeError):
        encode_septets("`")


@pytest.mark.parametrize(
    ("value", "char"),
    [(0x00, "@"), (0x02, "$"), (0x24, "¤"), (0x10, "Δ"), (0x40, "¡"), (0x60, "¿"), (0x7F, "à")],
)
def test_spot_checks_against_the_standard(value: int, char: str) -> None:
    assert BASIC_TABLE[value] == char


def test_table_has_no_duplicates_and_128_entries() -> None:
    assert len(BASIC_TABLE) == 128
    assert len(set(BASIC_TABLE)) == 128
    assert len(GSM_CHARACTERS) == 127 + len(EXTENSION_TABLE)


def test_lenient_decoding_of_odd_escapes() -> None:
    # Unknown extension septet → the basic character; ESC ESC and a dangling ESC → space.
    assert decode_septets(b"\x1b\x41") == "A"
    assert decode_septets(b"\x1b\x1bx") == " x"
    assert decode_septets(b"ab\x1b") == "ab "
    assert decode_septets(b"\xc1") == "A"  # high bit masked


def test_septet_length_counts_escapes_twice() -> None:
    assert septet_length("a€[") == 5
    with pytest.raises(TextEncodeError, match="U\\+0105"):
        septet_length("ą")


def test_pack_known_vector() -> None:
    # The classic "hellohello" example of GSM 03.38 packing.
    assert pack_septets(encode_septets("hellohello")).hex() == "e8329bfd4697d9ec37"
    assert decode_septets(unpack_septets(bytes.fromhex("e8329bfd4697d9ec37"))) == "hellohello"


def test_pack_seven_septets_pads_with_cr_not_at() -> None:
    packed = pack_septets(encode_septets("1234567"))
    assert len(packed) == 7
    assert packed[-1] >> 1 == 0x0D
    assert decode_septets(unpack_septets(packed)) == "1234567"


def test_fill_bits_after_udh() -> None:
    assert fill_bits_after_udh(6) == 1  # 8-bit concat UDH: 48 bits + 1 = 7 septets
    assert fill_bits_after_udh(7) == 0  # 16-bit concat UDH: 56 bits = 8 septets


gsm_text = st.text(alphabet=sorted(GSM_CHARACTERS), max_size=200)


@given(gsm_text)
def test_unpacked_round_trip(text: str) -> None:
    assert decode_septets(encode_septets(text)) == text


@given(gsm_text.filter(lambda t: not t.endswith(("\r", "@"))), st.integers(0, 6))
def test_packed_round_trip(text: str, fill: int) -> None:
    septets = encode_septets(text)
    packed = pack_septets(septets, fill)
    assert len(packed) <= (fill + 7 * (len(septets) + 1) + 7) // 8
    assert decode_septets(unpack_septets(packed, fill)) == text


@given(gsm_text, st.integers(0, 6))
def test_packed_round_trip_with_count(text: str, fill: int) -> None:
    septets = encode_septets(text)
    assert unpack_septets(pack_septets(septets, fill), fill, len(septets)) == septets


@given(st.binary(max_size=300), st.integers(0, 6))
def test_unpack_never_raises(data: bytes, fill: int) -> None:
    out = unpack_septets(data, fill)
    assert all(b < 0x80 for b in out)
    decode_septets(out)


def _reference_septets(text: str) -> bytes | None:
    """The definition, one character at a time: basic septet, or ESC + extension septet."""
    out = bytearray()
    for ch in text:
        cost = septet_cost(ch)
        if cost is None:
            return None
        if cost == 1:
            out.append(BASIC_TABLE.index(ch))
        else:
            out += bytes((0x1B, next(s for s, c in EXTENSION_TABLE.items() if c == ch)))
    return bytes(out)


def test_septet_encoding_agrees_with_the_tables_for_every_code_point() -> None:
    # The translate list covers code points up to the last GSM one; past it, and for every
    # character GSM-7 lacks (ASCII "`" and controls included), the text is refused.
    # Every code point up to past the last GSM one (U+20AC), then a sample of the rest.
    for i in [*range(0x3000), *range(0x3000, 0x110000, 61)]:
        ch = chr(i)
        for text in (ch, "a" + ch, ch + "é€"):
            expected = _reference_septets(text)
            assert gsm.septets_or_none(text) == expected, hex(i)
    with pytest.raises(TextEncodeError):
        encode_septets("ok`")
    assert encode_septets("") == b""


def test_plain_septet_decoding_agrees_with_the_table_for_every_octet() -> None:
    for value in range(256):
        if value & 0x7F == 0x1B:
            continue
        assert decode_septets(bytes([value, 0x41])) == BASIC_TABLE[value & 0x7F] + "A"
