"""MO reassembly: every concatenation form, any order, duplicates, timeouts, memory bound."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.sms.decoding import UdhError
from gateway.sms.reassembly import Incomplete, Reassembler
from gateway.sms.text import Part, TextEncodeError, encode_message


def params(p: Part) -> dict[str, Any]:
    return {
        "short_message": p.short_message,
        "data_coding": p.data_coding,
        "esm_class": p.esm_class,
        **p.tlvs,
    }


def udh8(ref: int, total: int, seq: int, body: bytes, dc: int = 0) -> dict[str, Any]:
    return {
        "short_message": bytes([5, 0, 3, ref, total, seq]) + body,
        "data_coding": dc,
        "esm_class": 0x40,
    }


def test_single_message_comes_straight_back() -> None:
    r = Reassembler(10)
    assert r.add("a", {"short_message": b"HASLO", "data_coding": 0, "esm_class": 0}, 0) == "HASLO"
    assert r.add("a", {"message_payload": "Cześć".encode("utf-16-be"), "data_coding": 8}, 0) == (
        "Cześć"
    )
    assert len(r) == 0


def test_udh_with_total_one_is_whole() -> None:
    assert Reassembler(10).add("a", udh8(1, 1, 1, b"x"), 0) == "x"


def test_out_of_order_and_duplicates() -> None:
    r = Reassembler(10)
    assert r.add("a", udh8(7, 3, 3, b"three"), 0) is None
    assert r.add("a", udh8(7, 3, 1, b"one "), 1) is None
    assert r.add("a", udh8(7, 3, 1, b"ONE "), 2) is None  # a redelivery: the first copy stands
    assert len(r) == 1
    assert r.add("a", udh8(7, 3, 2, b"two "), 3) == "one two three"
    assert len(r) == 0
    assert r.add("a", udh8(7, 3, 1, b"one "), 12.9) is None  # a late redelivery: ignored
    assert len(r) == 0
    assert r.expire(12.9) == []
    # One timeout after completion the reference may be reused by a new message.
    assert r.add("a", udh8(7, 3, 1, b"new "), 13.0) is None
    assert len(r) == 1


def test_messages_are_keyed_by_source_ref_total_and_scheme() -> None:
    r = Reassembler(10)
    assert r.add("a", udh8(1, 2, 1, b"A1"), 0) is None
    assert r.add("b", udh8(1, 2, 1, b"B1"), 0) is None
    assert r.add("a", udh8(1, 3, 1, b"X1"), 0) is None
    sar = {"short_message": b"S1", "sar_msg_ref_num": 1, "sar_total_segments": 2}
    assert r.add("a", {**sar, "sar_segment_seqnum": 1}, 0) is None
    assert len(r) == 4
    assert r.add("b", udh8(1, 2, 2, b"B2"), 0) == "B1B2"
    assert r.add("a", udh8(1, 2, 2, b"A2"), 0) == "A1A2"
    assert r.add("a", {**sar, "short_message": b"S2", "sar_segment_seqnum": 2}, 0) == "S1S2"


@pytest.mark.parametrize("long", ["udh", "udh16", "sar", "payload"])
def test_all_long_forms(long: Any) -> None:
    text = "Reklamacja: " + "zażółć gęślą jaźń 😀 " * 20
    parts = encode_message(text, long=long, ref=300)
    r = Reassembler(10)
    outs = [r.add("48600000001", params(p), 0) for p in reversed(parts)]
    assert outs[-1] == text
    assert outs[:-1] == [None] * (len(parts) - 1)


def test_escape_split_across_parts_by_a_sender_is_healed() -> None:
    r = Reassembler(10)
    assert r.add("a", udh8(9, 2, 1, b"cost 5\x1b"), 0) is None
    assert r.add("a", udh8(9, 2, 2, b"e!"), 0) == "cost 5€!"


def test_surrogate_pair_split_across_parts_by_a_sender_is_healed() -> None:
    pair = "😀".encode("utf-16-be")
    r = Reassembler(10)
    assert r.add("a", udh8(9, 2, 2, pair[2:] + "!".encode("utf-16-be"), dc=8), 0) is None
    assert r.add("a", udh8(9, 2, 1, "a".encode("utf-16-be") + pair[:2], dc=8), 0) == "a😀!"


def test_parts_in_different_codings_decode_separately() -> None:
    r = Reassembler(10)
    assert r.add("a", udh8(3, 2, 1, b"Hello "), 0) is None
    assert r.add("a", udh8(3, 2, 2, "łódź".encode("utf-16-be"), dc=8), 0) == "Hello łódź"


def test_invalid_sar_values_mean_a_whole_message() -> None:
    r = Reassembler(10)
    bad = {"short_message": b"x", "sar_msg_ref_num": 1, "sar_total_segments": 2}
    assert r.add("a", {**bad, "sar_segment_seqnum": 3}, 0) == "x"
    assert r.add("a", {**bad, "sar_segment_seqnum": 0}, 0) == "x"
    assert r.add("a", {**bad, "sar_total_segments": 0, "sar_segment_seqnum": 1}, 0) == "x"


def test_malformed_udh_raises_udh_error() -> None:
    with pytest.raises(UdhError):
        Reassembler(10).add("a", {"short_message": b"\x09\x00", "esm_class": 0x40}, 0)


def test_expire_returns_what_was_received() -> None:
    r = Reassembler(30)
    r.add("a", udh8(5, 4, 1, b"one "), 100.0)
    r.add("a", udh8(5, 4, 4, b"four"), 110.0)
    r.add("b", udh8(6, 2, 1, b"later"), 120.0)
    assert r.expire(129.9) == []
    [gone] = r.expire(130.0)  # 30 s after the first part of "a"
    assert gone == Incomplete("a", "udh8", 5, 4, {1: "one ", 4: "four"}, 100.0, "timeout")
    assert gone.missing == (2, 3)
    assert gone.text() == "one […]four"
    assert gone.text(marker="…") == "one …four"
    assert len(r) == 1
    assert [i.source for i in r.expire(1000.0)] == ["b"]
    assert r.expire(2000.0) == []
    assert len(r) == 0


def test_incomplete_text_marks_leading_and_trailing_gaps() -> None:
    inc = Incomplete("a", "sar", 1, 5, {2: "b", 3: "c"}, 0.0, "timeout")
    assert inc.text("_") == "_bc_"


def test_memory_is_bounded_and_evictions_are_reported() -> None:
    r = Reassembler(60, max_pending=3)
    for ref in range(5):
        assert r.add("a", udh8(ref, 2, 1, b"p%d" % ref), float(ref)) is None
    assert len(r) == 3
    gone = r.expire(4.0)
    assert [(i.ref, i.reason) for i in gone] == [(0, "evicted"), (1, "evicted")]
    assert r.add("a", udh8(4, 2, 2, b"!"), 5.0) == "p4!"


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        Reassembler(0)
    with pytest.raises(ValueError):
        Reassembler(1, max_pending=0)


@settings(max_examples=100, deadline=None)
@given(
    st.text(min_size=1, max_size=600),
    st.sampled_from(["udh", "udh16", "sar", "payload"]),
    st.sampled_from(["ucs2", "transliterate"]),
    st.randoms(use_true_random=False),
    st.integers(0, 65535),
)
def test_any_order_with_duplicates(text: str, long: Any, policy: Any, rnd: Any, ref: int) -> None:
    try:
        parts = encode_message(text, long=long, policy=policy, ref=ref)
    except TextEncodeError as exc:  # lone surrogates in generated text are refused on purpose
        assert "not valid Unicode" in str(exc)
        return
    feed = parts + rnd.sample(parts, k=min(3, len(parts)))
    rnd.shuffle(feed)
    r = Reassembler(10)
    results = [x for x in (r.add("s", params(p), 0) for p in feed) if x is not None]
    expected = "".join(p.text for p in parts)
    if len(parts) == 1:  # no reference to recognise a copy by: the router's dedup handles it
        assert results == [expected] * feed.count(parts[0])
    else:
        assert results == [expected]
    assert len(r) == 0


def test_memory_of_completed_messages_is_bounded() -> None:
    r = Reassembler(60, max_pending=2)
    for ref in range(5):
        r.add("a", udh8(ref, 2, 1, b"x"), 0)
        assert r.add("a", udh8(ref, 2, 2, b"y"), 0) == "xy"
    assert len(r._done) == 2
    assert r.add("a", udh8(4, 2, 1, b"x"), 1) is None  # remembered: ignored
    assert len(r) == 0
    assert r.add("a", udh8(0, 2, 1, b"x"), 1) is None  # forgotten: a new message
    assert len(r) == 1


def test_one_sender_cannot_evict_another_subscribers_message() -> None:
    """10,000 first parts from one sender: only that sender's own messages are given up; the
    other subscriber's half-received message survives and completes."""
    r = Reassembler(60, max_pending=100, per_sender=8)
    assert r.add("48600000001", udh8(7, 2, 1, b"Dzie"), 0.0) is None
    for ref in range(10_000):
        assert r.add("48999999999", udh8(ref % 256, 3, 1, b"x" * 100), 1.0) is None
    assert len(r) == 9  # the flooder's last 8, and the subscriber's one
    assert r.add("48600000001", udh8(7, 2, 2, b"n dobry"), 2.0) == "Dzien dobry"
    assert r.evictions == {"sender_limit": 10_000 - 8}
    gone = r.expire(3.0)
    assert {i.source for i in gone} == {"48999999999"}
    assert {i.reason for i in gone} == {"sender_limit"}


def test_bytes_per_sender_are_bounded_too() -> None:
    r = Reassembler(60, per_sender=100, per_sender_bytes=1000)
    for ref in range(20):
        r.add("a", udh8(ref, 2, 1, b"y" * 140), 0.0)
    assert len(r) == 7  # 7 x 140 <= 1000 < 8 x 140
    assert r.evictions["sender_limit"] == 13
    # A single long message is never cut by the bytes limit: its parts all count.
    r = Reassembler(60, per_sender_bytes=200)
    parts = [r.add("b", udh8(1, 3, seq, b"z" * 140), 0.0) for seq in (1, 2, 3)]
    assert parts[-1] == "z" * 420


def test_the_global_cap_is_the_last_guard_and_counted() -> None:
    r = Reassembler(60, max_pending=3, per_sender=8)
    for i in range(5):
        r.add(f"4860000000{i}", udh8(1, 2, 1, b"p"), float(i))
    assert len(r) == 3 and r.evictions == {"evicted": 2}
