"""DeliveryTracker: receipts matched to sent parts across id spellings, order and states."""

from __future__ import annotations

from gateway.outbox.base import DeliveryTracker
from gateway.smpp.pdu import MessageState
from gateway.sms.events import ReceiptEvent
from gateway.sms.receipts import Receipt


def event(message_id: str, state: MessageState) -> ReceiptEvent:
    return ReceiptEvent(message_id, state.name, None, "48600000001", Receipt(message_id, state))


def test_hex_submit_ids_match_decimal_and_padded_receipts() -> None:
    finals: list[tuple[str, str, str]] = []
    tracker = DeliveryTracker(on_state=lambda *args: finals.append(args))
    tracker.sent("m1", "48600000001", ["5C1B6DAF", "00a1"])
    assert tracker.receipt(event("1545301423", MessageState.DELIVERED))  # decimal of 0x5c1b6daf
    assert tracker.state("m1") == "submitted"
    assert tracker.receipt(event("A1", MessageState.DELIVERED))
    assert tracker.part_states("m1") == ["delivered", "delivered"]
    assert finals == [("m1", "48600000001", "delivered")]
    assert (tracker.submitted, tracker.delivered, tracker.receipts) == (1, 1, 2)


def test_decimal_submit_ids_match_hex_receipts() -> None:
    tracker = DeliveryTracker()
    tracker.sent("m1", "48600000001", ["1545301424"])
    assert tracker.receipt(event("5C1B6DB0", MessageState.DELIVERED))
    assert tracker.state("m1") == "delivered"


def test_an_early_receipt_is_parked_and_applied_on_sent() -> None:
    tracker = DeliveryTracker()
    assert not tracker.receipt(event("00FF", MessageState.UNDELIVERABLE))
    assert tracker.parked == 1
    tracker.sent("m1", "48600000001", ["ff", "100"])
    assert (tracker.early, tracker.parked) == (1, 0)
    assert tracker.state("m1") == "failed"  # one failed part fails the message
    assert tracker.failed == 1
    assert tracker.receipt(event("100", MessageState.DELIVERED))
    assert tracker.state("m1") == "failed" and tracker.failed == 1  # counted once


def test_intermediate_states_then_final() -> None:
    finals: list[tuple[str, str, str]] = []
    tracker = DeliveryTracker(on_state=lambda *args: finals.append(args))
    tracker.sent("m1", "48600000001", ["abc"])
    tracker.receipt(event("ABC", MessageState.ENROUTE))
    assert tracker.state("m1") == "enroute"
    tracker.receipt(event("abc", MessageState.ACCEPTED))
    assert tracker.state("m1") == "accepted"
    assert finals == []
    tracker.receipt(event("0abc", MessageState.EXPIRED))
    assert tracker.state("m1") == "failed"
    assert finals == [("m1", "48600000001", "failed")]


def test_unknown_receipts_stay_parked_within_the_bound() -> None:
    tracker = DeliveryTracker(max_early=3)
    for i in range(10):
        assert not tracker.receipt(event(f"{i:x}", MessageState.DELIVERED))
    assert tracker.parked == 3
    tracker.sent("m1", "48600000001", ["9"])  # the newest parked one
    assert tracker.state("m1") == "delivered" and tracker.parked == 2
    tracker.sent("m2", "48600000001", ["0"])  # evicted long ago
    assert tracker.state("m2") == "submitted"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_stale_honours_the_grace_and_removes_what_it_returns() -> None:
    clock = FakeClock()
    tracker = DeliveryTracker(clock=clock)
    assert tracker.stale(1.0) == []  # nothing parked
    assert not tracker.receipt(event("a1", MessageState.DELIVERED))
    clock.now += 0.5
    assert not tracker.receipt(event("b2", MessageState.UNDELIVERABLE))
    clock.now += 0.25
    assert tracker.stale(1.0) == []  # a1 parked 0.75 s: still within the grace
    assert tracker.parked == 2
    clock.now += 0.25
    assert [e.message_id for e in tracker.stale(1.0)] == ["a1"]
    assert tracker.parked == 1
    assert tracker.stale(1.0) == []  # taken once
    clock.now += 0.5
    assert [e.message_id for e in tracker.stale(1.0)] == ["b2"]
    assert tracker.parked == 0
    tracker.sent("m1", "48600000001", ["a1"])  # too late: it went to the relay
    assert tracker.state("m1") == "submitted" and tracker.early == 0


def test_stale_leaves_receipts_matched_within_the_grace_alone() -> None:
    clock = FakeClock()
    tracker = DeliveryTracker(clock=clock)
    tracker.receipt(event("a1", MessageState.DELIVERED))
    tracker.receipt(event("b2", MessageState.DELIVERED))
    clock.now += 0.5
    tracker.sent("m1", "48600000001", ["A1"])  # our own submit_sm_resp, a moment late
    assert tracker.state("m1") == "delivered" and tracker.early == 1
    clock.now += 1.0
    assert [e.message_id for e in tracker.stale(1.0)] == ["b2"]
    assert tracker.parked == 0


def test_a_receipt_parked_again_ages_from_its_new_arrival() -> None:
    clock = FakeClock()
    tracker = DeliveryTracker(clock=clock)
    tracker.receipt(event("a1", MessageState.ENROUTE))
    clock.now += 0.8
    tracker.receipt(event("a1", MessageState.DELIVERED))  # the same id again, later
    clock.now += 0.5
    assert tracker.stale(1.0) == []
    clock.now += 0.5
    (only,) = tracker.stale(1.0)
    assert only.state == "DELIVERED"


def test_foreign_matches_without_parking() -> None:
    finals: list[tuple[str, str, str]] = []
    tracker = DeliveryTracker(on_state=lambda *args: finals.append(args))
    tracker.sent("m1", "48600000001", ["5C1B6DAF", "a2"])
    assert tracker.foreign(event("1545301423", MessageState.DELIVERED))  # decimal spelling
    assert tracker.foreign(event("A2", MessageState.DELIVERED))
    assert tracker.state("m1") == "delivered"
    assert finals == [("m1", "48600000001", "delivered")]
    assert not tracker.foreign(event("ffff", MessageState.DELIVERED))  # a third process's
    assert tracker.parked == 0
    tracker.sent("m2", "48600000001", ["ffff"])  # was not kept
    assert tracker.state("m2") == "submitted"
    assert (tracker.relayed_matched, tracker.relayed_unmatched) == (2, 1)
    assert (tracker.receipts, tracker.delivered) == (0, 1)  # counted where they arrived


def test_relayed_counts_published_and_dropped() -> None:
    tracker = DeliveryTracker()
    tracker.relayed(3)
    tracker.relayed(2, dropped=True)
    tracker.relayed(1)
    assert (tracker.relayed_out, tracker.relay_dropped) == (4, 2)
