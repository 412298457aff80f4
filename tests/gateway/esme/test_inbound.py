"""deliver_sm → InboundMessage / ReceiptEvent: receipts, reassembly, dedup, USSD."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.esme.inbound import InboundProcessor, dedup_key, is_receipt
from gateway.smpp.pdu import MessageState, Pdu, Status
from gateway.sms.events import InboundEvent, InboundMessage, ReceiptEvent
from tests.gateway.esme.submitting import submit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def deliver(seq: int = 1, **params: Any) -> Pdu:
    base = {"source_addr": "48600000001", "destination_addr": "2424", "data_coding": 0}
    return Pdu("deliver_sm", seq, 0, {**base, **params})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def got() -> list[InboundEvent]:
    return []


@pytest.fixture
def processor(got: list[InboundEvent], clock: Clock) -> InboundProcessor:
    async def sink(event: InboundEvent) -> None:
        got.append(event)

    return InboundProcessor(sink, clock=clock)  # dedup_ttl 120 s, SMSC response timeout 10 s


async def test_sms_becomes_a_message(processor: InboundProcessor, got: list[Any]) -> None:
    assert await processor(deliver(short_message=b"PAKIET")) == Status.ESME_ROK
    [msg] = got
    assert isinstance(msg, InboundMessage)
    assert (msg.msisdn, msg.text, msg.channel, msg.ussd_op) == (
        "48600000001",
        "PAKIET",
        "sms",
        None,
    )
    assert msg.destination == "2424" and msg.message_id.startswith("mo:")


async def test_receipt_by_esm_class_is_not_a_command(
    processor: InboundProcessor, got: list[Any]
) -> None:
    text = (
        b"id:1A2B sub:001 dlvrd:001 submit date:2511251200 done date:2511251201"
        b" stat:DELIVRD err:000 text:HASLO"
    )
    await processor(deliver(esm_class=0x04, short_message=text))
    [event] = got
    assert isinstance(event, ReceiptEvent)
    assert event.message_id == "1A2B" and event.state == "DELIVERED"
    assert processor.messages == 0 and processor.receipts == 1


async def test_receipt_by_tlvs_only(processor: InboundProcessor, got: list[Any]) -> None:
    pdu = deliver(
        short_message=b"", receipted_message_id="00ff", message_state=MessageState.UNDELIVERABLE
    )
    assert is_receipt(pdu)
    await processor(pdu)
    [event] = got
    assert isinstance(event, ReceiptEvent) and event.state == "UNDELIVERABLE"


async def test_redelivered_mo_is_acknowledged_but_not_handed_on(
    processor: InboundProcessor, got: list[Any], clock: Clock
) -> None:
    """Answered in time, then the connection dropped: the SMSC may not have our answer and
    offers the MO again; acknowledged, not handed on."""
    assert await processor(deliver(1, short_message=b"INFO")) == Status.ESME_ROK
    processor.connection_lost()
    assert await processor(deliver(2, short_message=b"INFO")) == Status.ESME_ROK
    assert len(got) == 1 and processor.duplicates == 1
    await processor(deliver(3, short_message=b"INFO", source_addr="48600000002"))
    assert len(got) == 2  # another subscriber is another message


async def test_long_mo_is_reassembled_and_redelivered_part_ignored(
    processor: InboundProcessor, got: list[Any]
) -> None:
    udh = bytes((5, 0, 3, 0x42, 2))
    await processor(deliver(1, esm_class=0x40, short_message=udh + b"\x02" + b"ADRES Dluga 1"))
    processor.connection_lost()
    await processor(deliver(2, esm_class=0x40, short_message=udh + b"\x02" + b"ADRES Dluga 1"))
    assert got == [] and processor.duplicates == 1
    await processor(deliver(3, esm_class=0x40, short_message=udh + b"\x01" + b"Warszawa "))
    [msg] = got
    assert msg.text == "Warszawa ADRES Dluga 1"  # whole, in part order


async def test_ussd_carries_session_and_op(processor: InboundProcessor, got: list[Any]) -> None:
    pdu = deliver(
        short_message=b"*100#", service_type="USSD", ussd_service_op=1, its_session_info=0x0700
    )
    await processor(pdu)
    [msg] = got
    assert (msg.channel, msg.ussd_op, msg.its_session_info) == ("ussd", 1, 0x0700)
    assert msg.session_id == "48600000001:7"


async def test_same_ussd_answer_twice_is_not_a_duplicate(
    processor: InboundProcessor, got: list[Any]
) -> None:
    for _ in range(2):
        await processor(deliver(short_message=b"1", ussd_service_op=18))
    assert len(got) == 2
    assert dedup_key(deliver(short_message=b"1", ussd_service_op=18)) is None


async def test_copy_of_a_failed_turn_is_processed(got: list[Any], clock: Clock) -> None:
    """A turn that raised (TurnUnavailable) was answered ESME_RX_T_APPN: the SMSC's copy must
    run the turn, however soon it comes."""
    calls = 0

    async def flaky(event: InboundEvent) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("router down")
        got.append(event)

    processor = InboundProcessor(flaky, clock=clock)
    with pytest.raises(RuntimeError):
        await processor(deliver(1, short_message=b"HASLO"))
    await processor(deliver(2, short_message=b"HASLO"))  # the SMSC's redelivery is processed
    assert [m.text for m in got] == ["HASLO"] and processor.duplicates == 0
    processor.connection_lost()
    await processor(deliver(3, short_message=b"HASLO"))  # a copy of the one that succeeded
    assert len(got) == 1 and processor.duplicates == 1


async def test_incomplete_long_mo_expires(got: list[Any], clock: Clock) -> None:
    async def sink(event: InboundEvent) -> None:
        got.append(event)

    processor = InboundProcessor(sink, reassembly_timeout=60, clock=clock)
    await processor(deliver(esm_class=0x40, short_message=bytes((5, 0, 3, 9, 2, 1)) + b"half"))
    assert processor.expire() == [] and got == []
    clock.now += 61
    [lost] = processor.expire()
    assert lost.source == "48600000001" and lost.missing == (2,)


async def test_same_command_after_another_is_not_a_redelivery(
    processor: InboundProcessor, got: list[Any]
) -> None:
    for seq, text in enumerate([b"3IJA", b"3IJA 605111222 606222333 607333444", b"3IJA"]):
        await processor(deliver(seq, short_message=text))
    assert [m.text for m in got] == ["3IJA", "3IJA 605111222 606222333 607333444", "3IJA"]
    processor.connection_lost()
    await processor(deliver(9, short_message=b"3IJA"))  # offered again after the drop: a copy
    assert len(got) == 3 and processor.duplicates == 1


class HeldSink:
    """A sink that keeps the first event until ``release`` (a slow turn), recording entries."""

    def __init__(self) -> None:
        self.entered: list[str] = []
        self.first_in = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, event: InboundEvent) -> None:
        assert isinstance(event, InboundMessage)
        self.entered.append(event.text)
        if len(self.entered) == 1:
            self.first_in.set()
            await self.release.wait()


async def test_one_subscribers_messages_reach_the_sink_in_arrival_order() -> None:
    sink = HeldSink()
    processor = InboundProcessor(sink)
    first = asyncio.create_task(processor(deliver(1, short_message=b"3IJA 605111222")))
    await asyncio.wait_for(sink.first_in.wait(), 5)
    second = asyncio.create_task(processor(deliver(2, short_message=b"TAK 111111")))
    for _ in range(5):
        await asyncio.sleep(0)  # let the second run as far as it can
    assert sink.entered == ["3IJA 605111222"]  # waits for the first turn
    sink.release.set()
    await asyncio.wait_for(asyncio.gather(first, second), 5)
    assert sink.entered == ["3IJA 605111222", "TAK 111111"]
    assert processor._locks == {}


async def test_ussd_answer_after_our_reply_is_a_new_turn_not_a_redelivery(
    processor: InboundProcessor, got: list[Any]
) -> None:
    def answer(seq: int) -> Pdu:
        return deliver(seq, short_message=b"2", ussd_service_op=18, its_session_info=0x0700)

    await processor(answer(1))
    await processor(answer(2))  # no reply in between: the SMSC redelivered it
    assert len(got) == 1 and processor.duplicates == 1
    processor.replied("+48600000001")  # the menu left (any spelling of the number)
    await processor(answer(3))  # the subscriber answered the menu with "2" again
    assert len(got) == 2 and processor.duplicates == 1
    await processor(answer(4))  # a copy of that one, before our next reply
    assert len(got) == 2 and processor.duplicates == 2


async def test_ussd_with_a_shared_outbox_needs_a_lost_connection_to_call_an_answer_a_copy(
    got: list[Any], clock: Clock
) -> None:
    """Two processes on one outbox: the menu for "2" may leave through the other process, so
    "replied" never comes here; the next "2" is the subscriber's, unless a link was lost."""

    async def sink(event: InboundEvent) -> None:
        got.append(event)

    processor = InboundProcessor(sink, clock=clock, private_outbox=False)

    def answer(seq: int) -> Pdu:
        return deliver(seq, short_message=b"2", ussd_service_op=18, its_session_info=0x0700)

    await processor(answer(1))
    await processor(answer(2))  # the menu left elsewhere; the subscriber answered "2" again
    assert len(got) == 2 and processor.duplicates == 0
    processor.connection_lost()  # our deliver_sm_resp for answer 2 may not have arrived
    await processor(answer(3))
    assert len(got) == 2 and processor.duplicates == 1
    processor.replied("48600000001")  # a menu of ours was accepted since: a new turn
    await processor(answer(4))
    assert len(got) == 3 and processor.duplicates == 1


async def test_a_reply_does_not_make_a_repeated_sms_new(
    processor: InboundProcessor, got: list[Any]
) -> None:
    """SMS redeliveries come after the SMSC's timeout, usually after our reply left: the turn
    rule is for USSD only, where the network cannot redeliver an answered menu's answer."""
    await processor(deliver(1, short_message=b"INFO"))
    processor.connection_lost()
    processor.replied("48600000001")
    await processor(deliver(2, short_message=b"INFO"))
    assert len(got) == 1 and processor.duplicates == 1


async def test_same_sms_typed_again_after_the_reply_is_answered_again(
    processor: InboundProcessor, got: list[Any], clock: Clock
) -> None:
    """The reported bug: PAKIET, the reply, PAKIET again 15 s later got no answer."""
    await processor(deliver(1, short_message=b"PAKIET"))
    processor.replied("48600000001")
    clock.now += 15
    await processor(deliver(2, short_message=b"PAKIET"))
    assert [m.text for m in got] == ["PAKIET", "PAKIET"] and processor.duplicates == 0


async def test_the_same_text_twice_is_answered_twice(
    processor: InboundProcessor, got: list[Any], clock: Clock
) -> None:
    """NIE, NIE: answered in time and no connection lost, so the SMSC had no reason to offer it
    again — the subscriber sent it twice, however soon."""
    await processor(deliver(1, short_message=b"NIE"))
    clock.now += 0.2
    await processor(deliver(2, short_message=b"NIE"))
    assert [m.text for m in got] == ["NIE", "NIE"] and processor.duplicates == 0


async def test_typed_twice_while_the_first_is_answered_is_two_messages(clock: Clock) -> None:
    """The second copy came while the first was in the sink but within the SMSC's response
    timeout: the SMSC cannot have given up yet, so the subscriber typed it twice."""
    sink = HeldSink()
    processor = InboundProcessor(sink, clock=clock)
    first = asyncio.create_task(processor(deliver(1, short_message=b"PAKIET")))
    await asyncio.wait_for(sink.first_in.wait(), 5)
    clock.now += 1
    second = asyncio.create_task(processor(deliver(2, short_message=b"PAKIET")))
    for _ in range(5):
        await asyncio.sleep(0)
    sink.release.set()
    await asyncio.wait_for(asyncio.gather(first, second), 5)
    assert sink.entered == ["PAKIET", "PAKIET"] and processor.duplicates == 0


async def test_copy_after_our_late_answer_is_dropped(got: list[Any], clock: Clock) -> None:
    """Our answer was written after the SMSC's response timeout (configurable): its copy, even
    one that comes after our answer, is a redelivery within the TTL."""
    slow = [2.5]

    async def sink(event: InboundEvent) -> None:
        clock.now += slow.pop() if slow else 0.0  # the first turn takes 2.5 s
        got.append(event)

    processor = InboundProcessor(sink, smsc_response_timeout=2.0, clock=clock)
    await processor(deliver(1, short_message=b"PAKIET"))
    clock.now += 1
    await processor(deliver(2, short_message=b"PAKIET"))
    assert len(got) == 1 and processor.duplicates == 1
    clock.now += 120
    await processor(deliver(3, short_message=b"PAKIET"))
    assert len(got) == 2 and processor.duplicates == 1


async def test_copy_while_the_first_is_still_in_the_sink_is_dropped(clock: Clock) -> None:
    """The SMSC timed out on a slow turn and resent: the copy is dropped however late."""
    sink = HeldSink()
    processor = InboundProcessor(sink, clock=clock)
    first = asyncio.create_task(processor(deliver(1, short_message=b"PAKIET")))
    await asyncio.wait_for(sink.first_in.wait(), 5)
    clock.now += 30
    copy = asyncio.create_task(processor(deliver(2, short_message=b"PAKIET")))
    for _ in range(5):
        await asyncio.sleep(0)
    sink.release.set()
    assert list(await asyncio.wait_for(asyncio.gather(first, copy), 5)) == [Status.ESME_ROK] * 2
    assert sink.entered == ["PAKIET"] and processor.duplicates == 1
    clock.now += 121  # our answer was late: only past the TTL is it the subscriber's again
    await processor(deliver(3, short_message=b"PAKIET"))
    assert sink.entered == ["PAKIET", "PAKIET"]


@pytest.mark.parametrize(
    ("private_outbox", "mark"),
    [
        # The SMSC took our menu (its submit_sm_resp came back on this process's bind).
        (True, "replied"),
        # Two processes on one outbox: this one's turn queued the menu, the other's bind sent
        # it (no ``replied`` here); the router tells of the queued menu.
        (False, "queued"),
    ],
)
async def test_ussd_answer_to_a_menu_that_left_before_the_turn_ended_is_a_new_turn(
    clock: Clock, private_outbox: bool, mark: str
) -> None:
    """The runtime hands a turn's menu to the outbox before it saves the state; a fast handset
    answers the menu with the same "1" while the first turn is still finishing. The menu left
    in between, so it is a new turn (it waits for the first), not a copy; an identical answer
    before the menu is still the SMSC's copy."""
    sink = HeldSink()
    processor = InboundProcessor(sink, clock=clock, private_outbox=private_outbox)

    def answer(seq: int) -> Pdu:
        return deliver(seq, short_message=b"1", ussd_service_op=18, its_session_info=0x0700)

    first = asyncio.create_task(processor(answer(1)))
    await asyncio.wait_for(sink.first_in.wait(), 5)
    copy = asyncio.create_task(processor(answer(2)))  # before our menu: the SMSC's copy
    for _ in range(5):
        await asyncio.sleep(0)
    getattr(processor, mark)("48600000001")
    again = asyncio.create_task(processor(answer(3)))  # the subscriber answers it with "1"
    for _ in range(5):
        await asyncio.sleep(0)
    sink.release.set()
    done = await asyncio.wait_for(asyncio.gather(first, copy, again), 5)
    assert list(done) == [Status.ESME_ROK] * 3
    assert sink.entered == ["1", "1"] and processor.duplicates == 1


async def test_ussd_answer_offered_again_after_a_lost_link_is_a_copy_despite_the_queued_menu(
    processor: InboundProcessor, got: list[Any]
) -> None:
    """The menu was queued, then the link dropped before our deliver_sm_resp reached the SMSC:
    the same answer offered again after the reconnect is the SMSC's copy. Once the SMSC takes
    the menu (after the reconnect) the subscriber's next "1" is a new turn."""

    def answer(seq: int) -> Pdu:
        return deliver(seq, short_message=b"1", ussd_service_op=18, its_session_info=0x0700)

    await processor(answer(1))
    processor.queued("48600000001")
    processor.connection_lost()
    await processor(answer(2))
    assert len(got) == 1 and processor.duplicates == 1
    processor.replied("48600000001")
    await processor(answer(3))
    assert len(got) == 2 and processor.duplicates == 1


async def test_the_router_tells_of_every_ussd_menu_before_it_queues_it() -> None:
    """The router's part of the rule above: as the USSD menu goes into the outbox — before the
    put, since once it is stored another process may send it and the subscriber's answer come
    back before the put returns here — and not for SMS replies."""
    from fsm.runtime import Reply
    from gateway.metrics import Metrics
    from gateway.router import Router

    class Outbox:
        def __init__(self) -> None:
            self.put_for: list[str] = []

        async def put(self, msisdn: str, texts: Any, meta: Any = None) -> list[str]:
            self.put_for.append(msisdn)
            return ["1"]

    outbox = Outbox()
    told: list[tuple[str, int]] = []

    class Runtime:
        async def turn(self, inbound: Any, deliver: Any) -> list[Reply]:
            replies = [Reply("Menu: 1 Konto")]
            await deliver(replies)
            return replies

    router = Router(
        Runtime(),  # type: ignore[arg-type]
        outbox,  # type: ignore[arg-type]
        Metrics(),
        on_ussd_queued=lambda msisdn: told.append((msisdn, len(outbox.put_for))),
    )
    ussd = InboundMessage("48600000001", "1", "ussd", session_id="48600000001:7", ussd_op=18)
    await router(ussd)
    await router(InboundMessage("48600000001", "PAKIET", "sms"))
    assert told == [("48600000001", 0)], "once, for the USSD menu, before the put"
    assert outbox.put_for == ["48600000001", "48600000001"]


async def test_ussd_answer_to_a_menu_another_process_sent_during_the_put_is_a_new_turn(
    clock: Clock,
) -> None:
    """Two processes on one Redis outbox: our turn's put stores the menu, the other process's
    sender takes it at once, the handset answers "1" again, and that answer reaches this
    process before our put has returned. It answers the menu: a new turn, never a copy (found
    by bench/e2e.py's USSD walk with two servers: 4–8 answers per run lost)."""
    from fsm.runtime import Reply
    from gateway.metrics import Metrics
    from gateway.router import Router

    stored = asyncio.Event()
    returns = asyncio.Event()

    class SlowOutbox:
        async def put(self, msisdn: str, texts: Any, meta: Any = None) -> list[str]:
            stored.set()  # in Redis now: the other process may send it
            await returns.wait()
            return ["1"]

    entered: list[str] = []

    class Runtime:
        async def turn(self, inbound: Any, deliver: Any) -> list[Reply]:
            entered.append(inbound.text)
            replies = [Reply("Menu: 1 Konto")]
            await deliver(replies)
            return replies

    def queued(msisdn: str) -> None:
        processor.queued(msisdn)  # built below with this router, as gateway/app.py does

    router = Router(Runtime(), SlowOutbox(), Metrics(), on_ussd_queued=queued)  # type: ignore[arg-type]
    processor = InboundProcessor(router, clock=clock, private_outbox=False)

    def answer(seq: int) -> Pdu:
        return deliver(seq, short_message=b"1", ussd_service_op=18, its_session_info=0x0700)

    first = asyncio.create_task(processor(answer(1)))
    await asyncio.wait_for(stored.wait(), 5)
    again = asyncio.create_task(processor(answer(2)))  # the answer to the menu just stored
    for _ in range(5):
        await asyncio.sleep(0)
    stored.clear()
    returns.set()
    done = await asyncio.wait_for(asyncio.gather(first, again), 5)
    assert list(done) == [Status.ESME_ROK] * 2
    assert entered == ["1", "1"] and processor.duplicates == 0


async def test_copy_after_a_lost_connection_is_dropped_within_the_ttl(
    processor: InboundProcessor, got: list[Any], clock: Clock
) -> None:
    """Our deliver_sm_resp may have died with the connection: the SMSC resends after
    reconnecting, which can take longer than the window."""
    await processor(deliver(1, short_message=b"PAKIET"))
    processor.connection_lost()
    clock.now += 60
    await processor(deliver(2, short_message=b"PAKIET"))
    assert len(got) == 1 and processor.duplicates == 1
    clock.now += 61  # 121 s after the first copy: past the TTL
    await processor(deliver(3, short_message=b"PAKIET"))
    assert len(got) == 2 and processor.duplicates == 1


async def test_connection_lost_before_the_message_does_not_count(
    processor: InboundProcessor, got: list[Any], clock: Clock
) -> None:
    processor.connection_lost()
    await processor(deliver(1, short_message=b"PAKIET"))
    clock.now += 60
    await processor(deliver(2, short_message=b"PAKIET"))
    assert len(got) == 2 and processor.duplicates == 0


async def test_ussd_copy_after_the_ttl_is_a_new_message(
    processor: InboundProcessor, got: list[Any], clock: Clock
) -> None:
    def answer(seq: int) -> Pdu:
        return deliver(seq, short_message=b"2", ussd_service_op=18, its_session_info=0x0700)

    await processor(answer(1))
    clock.now += 60  # no reply: a copy, however long the SMSC took (within the TTL)
    await processor(answer(2))
    clock.now += 61
    await processor(answer(3))
    assert len(got) == 2 and processor.duplicates == 1


async def test_subscribers_remembered_are_bounded(got: list[Any], clock: Clock) -> None:
    async def sink(event: InboundEvent) -> None:
        got.append(event)

    processor = InboundProcessor(sink, clock=clock, max_sources=2)
    for n in (1, 2, 3):
        await processor(deliver(n, short_message=b"INFO", source_addr=f"4860000000{n}"))
    assert len(processor._last) == 2
    processor.connection_lost()
    await processor(deliver(4, short_message=b"INFO", source_addr="48600000001"))
    assert len(got) == 4  # forgotten (least recently seen): handed on
    await processor(deliver(5, short_message=b"INFO", source_addr="48600000003"))
    assert len(got) == 4 and processor.duplicates == 1


async def test_the_link_reports_a_lost_connection(got: list[Any], clock: Clock) -> None:
    """Wired for real: the SMSC cuts the connection after the first copy and re-offers the MO
    a minute later over the new one (no sleeps: the clock is injected)."""
    from gateway.esme.session import SmppSession
    from gateway.settings import SmscProfile
    from simulator.controller import SimulatorController

    async def sink(event: InboundEvent) -> None:
        got.append(event)

    processor = InboundProcessor(sink, clock=clock)
    async with SimulatorController(accounts={"idea24": "idea24"}) as sim:
        host, port = sim.smpp_address
        profile = SmscProfile("idea24", "idea24", host, port, response_timeout=2.0)
        async with SmppSession(
            profile,
            processor,
            on_connection_lost=processor.connection_lost,
            backoff_base=0.01,
            backoff_cap=0.05,
        ) as session:
            assert await session.wait_bound(5)
            await sim.inject_mo("48600000001", "2424", "PAKIET", ack_timeout=5)
            assert sim.drop_all() >= 1
            clock.now += 60
            await sim.inject_mo("48600000001", "2424", "PAKIET", ack_timeout=5)
    assert [m.text for m in got if isinstance(m, InboundMessage)] == ["PAKIET"]
    assert processor.duplicates == 1


# -- cached pure work: the same answers as computing it each time ------------------------------


#: The fields the key was first written over (the oracle keeps its own list, on purpose).
_REFERENCE_FIELDS = (
    "source_addr",
    "destination_addr",
    "data_coding",
    "esm_class",
    "short_message",
    "message_payload",
    "sar_msg_ref_num",
    "sar_segment_seqnum",
    "ussd_service_op",
    "its_session_info",
)


def _reference_dedup_key(pdu: Pdu) -> str | None:
    """The key as first written: every field fed to the hash on its own."""
    if pdu.get("ussd_service_op") is not None and pdu.get("its_session_info") is None:
        return None
    digest = hashlib.blake2b(digest_size=16)
    for name in _REFERENCE_FIELDS:
        value = pdu.get(name)
        raw = value if isinstance(value, bytes) else str(value).encode()
        digest.update(len(raw).to_bytes(4, "big") + raw)
    return "mo:" + digest.hexdigest()


_field_values = st.one_of(
    st.none(),
    st.integers(-5, 70000),
    st.booleans(),
    st.binary(max_size=20),
    st.text(max_size=10),
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([*_REFERENCE_FIELDS, "service_type"]),
        _field_values,
    )
)
def test_dedup_key_is_the_per_field_digest(params: dict[str, Any]) -> None:
    pdu = Pdu("deliver_sm", 1, 0, params)
    assert dedup_key(pdu) == _reference_dedup_key(pdu)


def test_source_numbers_are_normalised_the_same_from_the_cache() -> None:
    seen: list[InboundEvent] = []

    async def sink(event: InboundEvent) -> None:
        seen.append(event)

    processor = InboundProcessor(sink, max_sources=2)
    sources = ["+48 600 000 001", "600000001", "IDEA24", "0048600000001", "600000001", "IDEA24"]
    for n, source in enumerate(sources * 2):
        status = asyncio.run(
            processor(deliver(n, source_addr=source, short_message=f"T{n}".encode()))
        )
        assert status == Status.ESME_ROK
    assert [e.msisdn for e in seen] == [
        "48600000001",
        "48600000001",
        "IDEA24",
        "48600000001",
        "48600000001",
        "IDEA24",
    ] * 2
    assert len(processor._sources) <= 2  # bounded like the dedup memory


# -- receipts answered at once (no task per receipt) -------------------------------------------

_RECEIPT_TEXT = (
    b"id:1A2B sub:001 dlvrd:001 submit date:2511251200 done date:2511251201"
    b" stat:DELIVRD err:000 text:HASLO"
)


async def test_receipts_go_to_receipts_now_without_waiting(clock: Clock) -> None:
    sunk: list[InboundEvent] = []
    now: list[ReceiptEvent] = []

    async def sink(event: InboundEvent) -> None:
        sunk.append(event)

    processor = InboundProcessor(sink, clock=clock, receipts_now=now.append)
    assert processor.handle_now(deliver(esm_class=0x04, short_message=_RECEIPT_TEXT)) == 0
    [event] = now
    assert event.message_id == "1A2B" and event.state == "DELIVERED"
    assert processor.receipts == 1 and sunk == []
    # Anything else is not for now: the caller hands it to the processor as before.
    assert processor.handle_now(deliver(short_message=b"PAKIET")) is None
    # An unreadable receipt is answered (the SMSC must not retry it) and dropped.
    assert processor.handle_now(deliver(esm_class=0x04, short_message=b"id: stat:")) == 0
    assert len(now) == 1 and processor.receipts == 1
    # Without receipts_now every receipt still goes to the sink.
    plain = InboundProcessor(sink, clock=clock)
    assert plain.handle_now(deliver(esm_class=0x04, short_message=_RECEIPT_TEXT)) is None


async def test_the_link_answers_a_receipt_in_its_read_callback() -> None:
    """Wired for real: the simulator's receipt for a submit_sm reaches ``receipts_now`` and is
    answered, while MO still go through the processor's tasks to the sink; a receipt handler
    that raises gets ESME_RX_T_APPN (the SMSC offers it again) and the link lives on."""
    from gateway.esme.session import SmppSession
    from gateway.settings import SmscProfile
    from simulator.controller import SimulatorController

    sunk: list[InboundEvent] = []
    now: list[ReceiptEvent] = []
    failing = [True]

    async def sink(event: InboundEvent) -> None:
        sunk.append(event)

    def receipts_now(event: ReceiptEvent) -> None:
        if failing[0]:
            failing[0] = False
            raise RuntimeError("a bug in the receipt handler")
        now.append(event)

    processor = InboundProcessor(sink, receipts_now=receipts_now)
    async with SimulatorController(accounts={"idea24": "idea24"}) as sim:
        host, port = sim.smpp_address
        profile = SmscProfile("idea24", "idea24", host, port, response_timeout=2.0)
        async with SmppSession(profile, processor, answer_now=processor.handle_now) as session:
            assert await session.wait_bound(5)
            result = await submit(
                session,
                [
                    {
                        "source_addr": "2424",
                        "destination_addr": "48600000001",
                        "registered_delivery": 0x01,
                        "data_coding": 0,
                        "short_message": b"Twoj pakiet",
                    }
                ],
            )
            await sim.inject_mo("48600000001", "2424", "PAKIET", ack_timeout=5)
            for _ in range(500):  # the refused receipt comes again, then is taken
                if now:
                    break
                await asyncio.sleep(0.01)
    assert failing == [False], "the first offer met the raising handler"
    [receipt] = now
    assert receipt.message_id.lower() == result.message_ids[0].lower()
    assert [type(e) for e in sunk] == [InboundMessage]
