"""Encoding choice, splitting into parts (gateway.sms.text), UDH parsing and decoding
(gateway.sms.decoding)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.smpp.pdu import ESM_UDHI
from gateway.sms.decoding import UdhError, codec_for, decode_short_message, parse_udh
from gateway.sms.gsm import GSM_CHARACTERS, septet_cost
from gateway.sms.reassembly import Reassembler
from gateway.sms.text import (
    Part,
    TextDecodeError,
    TextEncodeError,
    TooManyParts,
    UssdTooLong,
    encode_message,
    encode_ussd,
    transliterate,
    ussd_text,
)

POLISH = "Zażółć gęślą jaźń. ZAŻÓŁĆ GĘŚLĄ JAŹŃ"


def septets_of(part: Part) -> int:
    udh = part.short_message[0] + 1 if part.esm_class & ESM_UDHI else 0
    return len(part.short_message) - udh


def ucs2_units(part: Part) -> int:
    udh = part.short_message[0] + 1 if part.esm_class & ESM_UDHI else 0
    return (len(part.short_message) - udh) // 2


def join(parts: list[Part]) -> str:
    r = Reassembler(60)
    out = [r.add("48600000001", params(p), 0.0) for p in parts]
    assert out[:-1] == [None] * (len(parts) - 1)
    assert out[-1] is not None
    return out[-1]


def params(p: Part) -> dict[str, Any]:
    return {
        "short_message": p.short_message,
        "data_coding": p.data_coding,
        "esm_class": p.esm_class,
        **p.tlvs,
    }


# -- encoding choice ---------------------------------------------------------------------------


def test_gsm_text_is_one_septet_per_octet() -> None:
    [part] = encode_message("Hello @ £5 {x}")
    assert part.data_coding == 0
    assert part.esm_class == 0
    assert part.short_message == b"Hello \x00 \x015 \x1b(x\x1b)"


def test_polish_under_ucs2_policy_keeps_the_letters() -> None:
    [part] = encode_message(POLISH, policy="ucs2")
    assert part.data_coding == 8
    assert part.short_message == POLISH.encode("utf-16-be")


def test_polish_under_transliterate_policy_is_gsm() -> None:
    [part] = encode_message(POLISH, policy="transliterate")
    assert part.data_coding == 0
    assert decode_short_message(part.short_message, 0, False) == (
        None,
        "Zazolc gesla jazn. ZAZOLC GESLA JAZN",
    )


def test_auto_keeps_polish_letters_while_they_cost_no_more_parts() -> None:
    short = "Usługa włączona."  # 1 part either way: the letters are free
    [part] = encode_message(short, policy="auto")
    assert part.data_coding == 8 and part.short_message == short.encode("utf-16-be")
    exactly = "ż" * 70  # still one UCS-2 part
    assert [p.data_coding for p in encode_message(exactly, policy="auto")] == [8]
    over = "ż" * 71  # two UCS-2 parts, one GSM-7 part transliterated
    [part] = encode_message(over, policy="auto")
    assert part.data_coding == 0 and part.short_message == b"z" * 71
    # 134 UCS-2 units are 2 parts, as are 234 septets (€ costs two): a tie keeps the letters...
    tie = "ł" * 34 + "€" * 100
    assert [p.data_coding for p in encode_message(tie, policy="auto")] == [8, 8]
    # ...and the same tie under 16-bit references (66 units a part) is 3 against 2: transliterated.
    assert {p.data_coding for p in encode_message(tie, policy="auto", long="udh16")} == {0}
    # Nothing to transliterate into GSM-7: UCS-2 of the original, as under the other policies.
    assert encode_message("日本" * 50, policy="auto")[0].data_coding == 8
    # GSM-7 text stays GSM-7.
    assert encode_message("a" * 200, policy="auto")[0].data_coding == 0


def test_auto_never_costs_more_parts_than_transliterate_or_ucs2() -> None:
    for n in range(1, 400, 7):
        for text in ("ą" * n, ("Zażółć gęślą jaźń " * 30)[:n], "€ł" * (n // 2 + 1)):
            auto = len(encode_message(text, policy="auto"))
            assert auto <= len(encode_message(text, policy="transliterate")), text
            assert auto <= len(encode_message(text, policy="ucs2")), text


def test_transliteration_of_typography() -> None:
    assert transliterate("„Cześć” – ‘to’ — już…") == "\"Czesc\" - 'to' - juz..."
    [part] = encode_message("„Cześć” — ok…", policy="transliterate")
    assert part.data_coding == 0
    assert part.text == '"Czesc" - ok...'


def test_transliterate_falls_back_to_ucs2_of_the_original_never_question_marks() -> None:
    text = "Zażółć 😀 Привет"
    [part] = encode_message(text, policy="transliterate")
    assert part.data_coding == 8
    assert part.short_message.decode("utf-16-be") == text
    assert b"?" not in part.short_message


def test_gsm_characters_that_look_foreign_stay_gsm() -> None:
    [part] = encode_message("Café Ñandù Øre Straße É §")
    assert part.data_coding == 0


def test_latin1_and_ia5_default_coding() -> None:
    [part] = encode_message("Café €?", default_coding=3)  # € is not Latin-1
    assert part.data_coding == 8
    [part] = encode_message("Café ¿", default_coding=3)
    assert (part.data_coding, part.short_message) == (3, "Café ¿".encode("latin-1"))
    [part] = encode_message("plain [ascii]", default_coding=1)
    assert (part.data_coding, part.short_message) == (1, b"plain [ascii]")
    [part] = encode_message("é", default_coding=1, policy="transliterate")
    assert part.data_coding == 8


def test_bad_arguments_raise_text_encode_error() -> None:
    with pytest.raises(TextEncodeError):
        encode_message("x", policy="qqq")  # type: ignore[arg-type]
    with pytest.raises(TextEncodeError):
        encode_message("x", long="multi")  # type: ignore[arg-type]
    with pytest.raises(TextEncodeError):
        encode_message("x", default_coding=8)
    with pytest.raises(TextEncodeError):
        encode_message("lone \ud800 surrogate")


# -- splitting boundaries ----------------------------------------------------------------------


def test_exactly_160_septets_is_one_part_161_is_two() -> None:
    assert len(encode_message("a" * 160)) == 1
    parts = encode_message("a" * 161)
    assert [septets_of(p) for p in parts] == [153, 8]
    assert all(p.esm_class == ESM_UDHI for p in parts)


def test_escape_on_the_160_edge() -> None:
    assert len(encode_message("a" * 158 + "€")) == 1  # 158 + 2 = 160
    parts = encode_message("a" * 159 + "€")  # 161 septets
    assert len(parts) == 2


def test_escape_never_straddles_the_153_boundary() -> None:
    text = "a" * 152 + "€" + "b" * 20  # € would take septets 153 and 154
    parts = encode_message(text)
    assert [p.text for p in parts] == ["a" * 152, "€" + "b" * 20]
    assert septets_of(parts[0]) == 152
    assert not parts[0].short_message.endswith(b"\x1b")
    assert join(parts) == text


def test_escape_exactly_fits_at_153() -> None:
    text = "a" * 151 + "€" + "b" * 20
    parts = encode_message(text)
    assert septets_of(parts[0]) == 153
    assert parts[0].text.endswith("€")


def test_udh8_header_bytes() -> None:
    parts = encode_message("x" * 400, ref=0x1A7)
    assert [p.short_message[:6] for p in parts] == [bytes([5, 0, 3, 0xA7, 3, i]) for i in (1, 2, 3)]


def test_udh16_header_bytes_and_152_septets() -> None:
    parts = encode_message("x" * 400, long="udh16", ref=0x1234)
    assert [p.short_message[:7] for p in parts] == [
        bytes([6, 8, 4, 0x12, 0x34, 3, i]) for i in (1, 2, 3)
    ]
    assert septets_of(parts[0]) == 152


def test_sar_parts_carry_tlvs_and_no_udh() -> None:
    parts = encode_message("y" * 200, long="sar", ref=77)
    assert [p.tlvs for p in parts] == [
        {"sar_msg_ref_num": 77, "sar_total_segments": 2, "sar_segment_seqnum": i} for i in (1, 2)
    ]
    assert [len(p.short_message) for p in parts] == [153, 47]
    assert all(p.esm_class == 0 for p in parts)


def test_payload_is_one_part() -> None:
    [part] = encode_message("z" * 1000, long="payload")
    assert part.short_message == b""
    assert part.tlvs == {"message_payload": b"z" * 1000}
    assert part.esm_class == 0


def test_ucs2_70_and_67_units() -> None:
    assert len(encode_message("ą" * 70)) == 1
    parts = encode_message("ą" * 71)
    assert [ucs2_units(p) for p in parts] == [67, 4]


def test_emoji_on_the_70_edge() -> None:
    assert len(encode_message("ą" * 68 + "😀")) == 1  # 68 + 2 units = 70
    assert len(encode_message("ą" * 69 + "😀")) == 2  # 71 units


def test_emoji_never_split_at_the_67_boundary() -> None:
    text = "ą" * 66 + "😀" + "ę" * 10  # the pair would take units 67 and 68
    parts = encode_message(text)
    assert [ucs2_units(p) for p in parts] == [66, 12]
    for p in parts:
        p.short_message[6:].decode("utf-16-be")  # each part is valid UTF-16 alone
    assert join(parts) == text


def test_emoji_on_the_66_boundary_of_udh16() -> None:
    text = "ą" * 65 + "😀" + "ę" * 10
    parts = encode_message(text, long="udh16")
    assert [ucs2_units(p) for p in parts] == [65, 12]
    assert join(parts) == text


def test_255_parts_is_the_limit() -> None:
    assert len(encode_message("a" * 153 * 255)) == 255
    with pytest.raises(TooManyParts) as info:
        encode_message("a" * (153 * 255 + 1))
    assert info.value.parts == 256
    with pytest.raises(TooManyParts):
        encode_message("a" * (153 * 255 + 1), long="payload")


def test_packed_gsm_with_udh() -> None:
    text = "packed " * 40
    parts = encode_message(text, packed=True)
    assert all(len(p.short_message) <= 140 for p in parts)
    r = Reassembler(60, packed=True)
    out = [r.add("src", params(p), 0.0) for p in parts]
    assert out[-1] == text


# -- USSD ----------------------------------------------------------------------------------------


def test_ussd_encoding() -> None:
    assert encode_ussd("1 Konto\n2 Pakiet") == (b"1 Konto\n2 Pakiet", 0)
    assert encode_ussd("Usługi", "ucs2") == ("Usługi".encode("utf-16-be"), 8)
    assert encode_ussd("Usługi", "transliterate") == (b"Uslugi", 0)
    assert len(encode_ussd("x" * 182)[0]) == 182
    with pytest.raises(UssdTooLong):
        encode_ussd("x" * 183)
    with pytest.raises(UssdTooLong):
        encode_ussd("…" * 61, "transliterate")  # 183 characters once transliterated
    # auto: Polish letters while the screen fits one UCS-2 USSD string (80 characters)
    assert encode_ussd("Usługi", "auto") == ("Usługi".encode("utf-16-be"), 8)
    assert encode_ussd("ł" * 81, "auto") == (b"l" * 81, 0)
    assert ussd_text("ł" * 80, "auto") == "ł" * 80
    assert ussd_text("ł" * 81, "auto") == "l" * 81
    assert ussd_text("Usługi", "ucs2") == "Usługi"
    assert ussd_text("Usługi", "transliterate") == "Uslugi"


# -- decoding --------------------------------------------------------------------------------


def test_udh_with_port_addressing_is_kept() -> None:
    data = bytes([0x0B, 0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0, 0x00, 0x03, 0x09, 0x02, 0x01]) + b"hi"
    udh, text = decode_short_message(data, 4, True)
    assert udh is not None
    assert udh.elements == ((0x05, bytes.fromhex("0b8423f0")), (0x00, b"\x09\x02\x01"))
    assert (udh.ref, udh.total, udh.seq, udh.ref_bits) == (9, 2, 1, 8)
    assert udh.length == 12
    assert text == "hi"


def test_invalid_concat_ie_is_ignored_not_fatal() -> None:
    udh, body = parse_udh(bytes([5, 0, 3, 1, 2, 3]) + b"x")  # seq 3 > total 2
    assert not udh.is_concatenated
    assert body == b"x"


@pytest.mark.parametrize(
    "data",
    [b"", b"\x05\x00\x03", b"\x03\x00\x05\x01", b"\x02\x00"],
)
def test_malformed_udh_raises_udh_error(data: bytes) -> None:
    with pytest.raises(UdhError):
        decode_short_message(data, 0, True)
    assert issubclass(UdhError, TextDecodeError)


@pytest.mark.parametrize(
    ("dc", "codec"),
    [
        (0, "gsm"),
        (1, "ascii"),
        (2, "latin-1"),
        (3, "latin-1"),
        (4, "latin-1"),
        (8, "utf-16-be"),
        (0x0F, "gsm"),  # USSD: CBS DCS "GSM-7, language unspecified"
        (0x11, "gsm"),  # general group, class 1
        (0x48, "utf-16-be"),  # automatic deletion group, UCS-2
        (0x18, "utf-16-be"),
        (0xF0, "gsm"),  # flash, default alphabet
        (0xF4, "latin-1"),  # 8-bit data
        (0xE0, "utf-16-be"),
        (0x90, "latin-1"),  # reserved
    ],
)
def test_codec_for_data_coding(dc: int, codec: str) -> None:
    assert codec_for(dc) == codec


def test_decoding_each_data_coding() -> None:
    assert decode_short_message(b"\x00\x11\x5f", 0, False) == (None, "@_§")
    assert decode_short_message(b"ASCII", 1, False) == (None, "ASCII")
    assert decode_short_message("zé".encode("latin-1"), 3, False) == (None, "zé")
    assert decode_short_message("ł😀".encode("utf-16-be"), 8, False) == (None, "ł😀")
    assert decode_short_message(b"\xff\x00", 4, False) == (None, "\xff\x00")
    # an SMSC whose "default alphabet" is really Latin-1
    assert decode_short_message("Café".encode("latin-1"), 0, False) == (None, "Café")


def test_bad_octets_become_replacement_characters() -> None:
    assert decode_short_message(b"\xd8\x00", 8, False)[1] == "\ufffd"  # lone surrogate
    assert decode_short_message(b"\x00a\x00", 8, False)[1] == "a\ufffd"  # odd length
    assert decode_short_message(b"\xff", 1, False)[1] == "\ufffd"


@given(st.binary(max_size=300), st.integers(0, 255), st.booleans(), st.booleans())
def test_decode_never_raises_anything_but_udh_error(
    data: bytes, dc: int, udhi: bool, packed: bool
) -> None:
    try:
        _udh, text = decode_short_message(data, dc, udhi, packed=packed)
    except UdhError:
        assert udhi
    else:
        assert isinstance(text, str)


# -- round trip: encode → decode → reassemble ------------------------------------------------

any_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(sorted(GSM_CHARACTERS)),
        st.sampled_from("ąćęłńóśźżĄĆĘŁŃÓŚŹŻ„”–—…’"),
        st.characters(codec="utf-8", exclude_categories=["Cs"]),
    ),
    min_size=1,
    max_size=700,
)


@settings(max_examples=150, deadline=None)
@given(
    any_text,
    st.sampled_from(["auto", "ucs2", "transliterate"]),
    st.sampled_from(["udh", "udh16", "sar", "payload"]),
    st.integers(0, 70000),
    st.booleans(),
    st.sampled_from([0, 1, 3]),
)
def test_round_trip(
    text: str, policy: Any, long: Any, ref: int, packed: bool, default_coding: int
) -> None:
    parts = encode_message(
        text, policy=policy, long=long, ref=ref, packed=packed, default_coding=default_coding
    )
    expected = "".join(p.text for p in parts)
    assert expected in (text, transliterate(text))
    if parts[0].data_coding == 8:
        assert expected == text
    for p in parts:
        octets = 160 if p.data_coding in (0, 1) and not packed else 140
        assert len(p.short_message) <= octets  # what a single SMS TPDU can carry
    r = Reassembler(60, packed=packed)
    outs = [r.add("src", params(p), 0.0) for p in parts]
    got = outs[-1]
    if packed and got is not None and expected.endswith("\r") and got.endswith("\r\r"):
        got = got[:-1]  # 23.038's CR-CR padding on an octet boundary
    if packed and expected.endswith("@") and got is not None and not got.endswith("@"):
        got += "@"  # a final @ filling the last octet reads as zero padding (documented)
    assert got == expected
    assert len(r) == 0


def _reference_cost(ch: str, data_coding: int) -> int:
    if data_coding == 8:
        return 2 if ord(ch) > 0xFFFF else 1
    if data_coding == 3:
        return 1
    cost = septet_cost(ch)
    assert cost is not None
    return cost


@settings(max_examples=150, deadline=None)
@given(
    any_text,
    st.sampled_from(["udh", "udh16", "sar"]),
    st.sampled_from([0, 1, 3]),
    st.sampled_from(["auto", "ucs2", "transliterate"]),
)
def test_parts_are_full_and_cut_only_between_characters(
    text: str, long: Any, default_coding: int, policy: Any
) -> None:
    parts = encode_message(text, long=long, default_coding=default_coding, policy=policy)
    dc = parts[0].data_coding
    single, per, per16 = {0: (160, 153, 152), 1: (160, 153, 152), 3: (140, 134, 133)}.get(
        dc, (70, 67, 66)
    )
    limit = per16 if long == "udh16" else per
    units = [sum(_reference_cost(ch, dc) for ch in p.text) for p in parts]
    if len(parts) == 1:
        assert units[0] <= single
        return
    assert sum(units) > single
    for i in range(len(parts)):
        assert 0 < units[i] <= limit
        if i + 1 < len(parts):  # greedy: the next character would not have fitted
            assert units[i] + _reference_cost(parts[i + 1].text[0], dc) > limit


def test_transliteration_agrees_with_its_table_for_every_code_point() -> None:
    from gateway.sms.text import _TRANSLIT

    # Every code point up to past the last mapped one (U+2212), then a sample of the rest.
    for i in [*range(0x3000), *range(0x3000, 0x110000, 61)]:
        ch = chr(i)
        assert transliterate("a" + ch + "ż") == "a" + _TRANSLIT.get(ch, ch) + "z", hex(i)


@settings(max_examples=200, deadline=None)
@given(
    any_text,
    st.sampled_from(["auto", "ucs2", "transliterate"]),
    st.sampled_from(["udh", "udh16", "sar", "payload"]),
    st.sampled_from([0, 1, 3]),
)
def test_each_part_carries_exactly_its_own_text_encoded(
    text: str, policy: Any, long: Any, default_coding: int
) -> None:
    # Parts are sliced from one encoding of the whole text: each must still be the encoding of
    # the text it claims to carry, after its UDH.
    parts = encode_message(text, policy=policy, long=long, default_coding=default_coding)
    for p in parts:
        data = p.tlvs.get("message_payload", p.short_message)
        udh = data[: data[0] + 1] if p.esm_class & ESM_UDHI else b""
        if p.data_coding == 0:
            own = _septets_by_table(p.text)
        else:
            own = p.text.encode({1: "ascii", 3: "latin-1", 8: "utf-16-be"}[p.data_coding])
        assert data == udh + own


def _septets_by_table(text: str) -> bytes:
    """GSM-7 unpacked, one character at a time from the tables."""
    from gateway.sms.gsm import BASIC_TABLE, EXTENSION_TABLE

    ext = {c: s for s, c in EXTENSION_TABLE.items()}
    out = bytearray()
    for ch in text:
        if ch in ext:
            out += bytes((0x1B, ext[ch]))
        else:
            out.append(BASIC_TABLE.index(ch))
    return bytes(out)
