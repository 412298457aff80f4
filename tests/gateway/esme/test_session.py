"""SmppSession over loopback against the mini SMSC: bind, window, timeouts, keep-alive,
reconnect, pushback, malformed PDUs, shutdown."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_session_smsc import Client, MiniSmsc

from gateway.esme.records import SubmitError
from gateway.esme.session import SmppSession
from gateway.smpp.pdu import Pdu, Status
from tests.gateway.esme.submitting import submit


def sm(text: str = "hello", dest: str = "48600000001") -> dict[str, Any]:
    return {
        "source_addr": "2424",
        "destination_addr": dest,
        "data_coding": 0,
        "short_message": text.encode(),
    }


@pytest.fixture
async def smsc() -> AsyncIterator[MiniSmsc]:
    server = await MiniSmsc().start()
    try:
        yield server
    finally:
        await server.stop()


async def until(predicate: Any, within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - conditions span several objects
            await asyncio.sleep(0.005)


async def test_binds_with_the_profile_and_submits(smsc: MiniSmsc) -> None:
    profile = smsc.profile(system_type="VMA", address_range="^2424", source_ton=5, source_npi=0)
    async with SmppSession(profile) as session:
        assert await session.wait_bound(5)
        bind = smsc.client.bind
        assert bind is not None and bind.command == "bind_transceiver"
        assert bind.get("system_type") == "VMA"
        assert bind.get("address_range") == "^2424"
        assert (bind.get("addr_ton"), bind.get("addr_npi")) == (5, 0)
        client = smsc.client
        result = await submit(session, [sm("one"), sm("two")])
    assert len(result.message_ids) == 2
    assert [smsc.accepted[m].get("short_message") for m in result.message_ids] == [b"one", b"two"]
    assert client.received[-1].command == "unbind"


async def test_tx_rx_pair_binds_two_connections(smsc: MiniSmsc) -> None:
    async with SmppSession(smsc.profile(bind="tx+rx")) as session:
        assert await session.wait_bound(5)
        commands = sorted(c.bind.command for c in smsc.clients if c.bind is not None)
        assert commands == ["bind_receiver", "bind_transmitter"]
        assert (await submit(session, [sm()])).message_ids


async def test_window_limits_outstanding_requests(smsc: MiniSmsc) -> None:
    async def hold(client: Client, pdu: Pdu) -> int | None:
        return None

    smsc.submit_hook = hold
    async with SmppSession(smsc.profile(window=4, response_timeout=10.0)) as session:
        assert await session.wait_bound(5)
        tasks = [asyncio.create_task(submit(session, [sm(str(i))])) for i in range(10)]
        await until(lambda: len(smsc.held) == 4)
        await asyncio.sleep(0.05)  # give an over-eager session the chance to send a 5th
        assert len(smsc.submits) == 4 and session.tx.in_flight == 4
        smsc.submit_hook = None
        smsc.release_held()
        results = await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert len({r.message_ids[0] for r in results}) == 10
    assert [p.get("short_message") for p in smsc.submits] == [str(i).encode() for i in range(10)]


async def test_response_timeout_fails_temporarily_and_late_answer_is_ignored(
    smsc: MiniSmsc,
) -> None:
    async def hold_first(client: Client, pdu: Pdu) -> int | None:
        return None if pdu.get("short_message") == b"lost" else Status.ESME_ROK

    smsc.submit_hook = hold_first
    async with SmppSession(smsc.profile(response_timeout=0.3)) as session:
        assert await session.wait_bound(5)
        started = time.monotonic()
        with pytest.raises(SubmitError) as info:
            await submit(session, [sm("lost")])
        assert info.value.temporary
        assert info.value.late_possible == {0}  # timed out: its answer may still come
        assert 0.25 <= time.monotonic() - started < 2
        assert session.tx.in_flight == 0
        smsc.release_held()  # the late response arrives: recognised, not matched to anything
        await until(lambda: session.tx.stats.late_responses == 1)
        assert (await submit(session, [sm("next")])).message_ids
        assert session.tx.stats.connects == 1


async def test_enquire_link_sent_when_idle_and_answered(smsc: MiniSmsc) -> None:
    async with SmppSession(smsc.profile(enquire_link=0.2)) as session:
        assert await session.wait_bound(5)
        await until(lambda: any(p.command == "enquire_link" for p in smsc.client.received), 3)
        resp = await smsc.client.request(Pdu("enquire_link"))
        assert resp.command == "enquire_link_resp" and resp.status == 0
        assert session.tx.stats.enquire_links_answered == 1


async def test_unanswered_enquire_link_drops_and_rebinds(smsc: MiniSmsc) -> None:
    session = SmppSession(smsc.profile(enquire_link=0.1, response_timeout=0.2), backoff_base=0.05)
    async with session:
        assert await session.wait_bound(5)
        first = smsc.client
        original = smsc._handle

        async def mute(client: Client, pdu: Pdu) -> None:
            if client is first and pdu.command == "enquire_link":
                return
            await original(client, pdu)

        smsc._handle = mute  # type: ignore[method-assign]
        await until(lambda: session.tx.stats.connects == 2 and session.bound, 5)
        assert (await submit(session, [sm()])).message_ids


async def test_smsc_restart_mid_traffic_resends_nothing_twice(smsc: MiniSmsc) -> None:
    async def flaky(client: Client, pdu: Pdu) -> int | None:
        if len(smsc.submits) == 5:
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(smsc.drop_all()))
            return None
        return Status.ESME_ROK

    smsc.submit_hook = flaky
    async with SmppSession(smsc.profile(), backoff_base=0.05) as session:
        assert await session.wait_bound(5)
        outcomes: list[str] = []
        for i in range(10):
            for _ in range(20):
                try:
                    await submit(session, [sm(f"m{i}")])
                    outcomes.append(f"m{i}")
                    break
                except SubmitError as exc:
                    assert exc.temporary
                    await session.wait_bound(5)
        assert outcomes == [f"m{i}" for i in range(10)]
        assert session.tx.stats.connects == 2
    texts = sorted(p.get("short_message").decode() for p in smsc.accepted.values())
    assert texts == sorted(f"m{i}" for i in range(10))


async def test_reconnect_backs_off_instead_of_looping(smsc: MiniSmsc) -> None:
    smsc.refuse_binds = True
    session = SmppSession(smsc.profile(), backoff_base=0.1, backoff_cap=0.4)
    async with session:
        await asyncio.sleep(1.0)
        attempts = smsc.bind_attempts
        assert 2 <= attempts <= 8, attempts  # 0.05-0.1, 0.1-0.2, 0.2-0.4, ... not hundreds
        assert not session.bound
        smsc.refuse_binds = False
        assert await session.wait_bound(3)
        assert session.tx.stats.bind_failures == attempts


async def test_throttled_submits_slow_down_and_all_arrive(smsc: MiniSmsc) -> None:
    count = 0

    async def throttle_every_third(client: Client, pdu: Pdu) -> int | None:
        nonlocal count
        count += 1
        return Status.ESME_RTHROTTLED if count % 3 == 0 else Status.ESME_ROK

    smsc.submit_hook = throttle_every_third
    session = SmppSession(smsc.profile())
    session.throttle._pause.base = 0.01
    async with session:
        assert await session.wait_bound(5)
        results = await asyncio.wait_for(
            asyncio.gather(*(submit(session, [sm(f"t{i}")]) for i in range(20))), 10
        )
    assert len(results) == 20 and session.throttle.pushbacks >= 6
    texts = sorted(p.get("short_message") for p in smsc.accepted.values())
    assert texts == sorted(f"t{i}".encode() for i in range(20))


async def test_rate_limit_is_respected_per_part(smsc: MiniSmsc) -> None:
    async with SmppSession(smsc.profile(rate=50.0)) as session:
        assert await session.wait_bound(5)
        session.throttle._tokens = 0  # start empty, so 25 parts need 0.5 s
        session.throttle._updated = time.monotonic()
        started = time.monotonic()
        await submit(session, [sm(f"p{i}") for i in range(25)])
        elapsed = time.monotonic() - started
    assert 0.45 <= elapsed < 2.0, elapsed


async def test_permanent_error_is_not_temporary(smsc: MiniSmsc) -> None:
    async def refuse(client: Client, pdu: Pdu) -> int | None:
        return Status.ESME_RINVDSTADR

    smsc.submit_hook = refuse
    async with SmppSession(smsc.profile()) as session:
        assert await session.wait_bound(5)
        with pytest.raises(SubmitError) as info:
            await submit(session, [sm()])
    assert not info.value.temporary and info.value.status == Status.ESME_RINVDSTADR


async def test_deliver_sm_answered_with_handler_status(smsc: MiniSmsc) -> None:
    seen: list[Pdu] = []

    async def on_inbound(pdu: Pdu) -> int:
        seen.append(pdu)
        return Status.ESME_ROK if len(seen) == 1 else Status.ESME_RX_T_APPN

    async with SmppSession(smsc.profile(), on_inbound) as session:
        assert await session.wait_bound(5)
        first = await smsc.deliver(source_addr="48600000001", short_message=b"INFO")
        second = await smsc.deliver(source_addr="48600000001", short_message=b"PAKIET")
        data = await smsc.client.request(
            Pdu("data_sm", params={"source_addr": "48600000001", "message_payload": b"X"})
        )
    assert (first.command, first.status) == ("deliver_sm_resp", 0)
    assert second.status == Status.ESME_RX_T_APPN
    assert data.command == "data_sm_resp"
    assert [p.command for p in seen] == ["deliver_sm", "deliver_sm", "data_sm"]


async def test_malformed_pdu_answered_with_nack_and_link_survives(smsc: MiniSmsc) -> None:
    async with SmppSession(smsc.profile()) as session:
        assert await session.wait_bound(5)
        client = smsc.client
        client.writer.write(struct.pack(">LLLL", 16, 0x00000777, 0, 4242))  # unknown command id
        await until(lambda: any(p.command == "generic_nack" for p in client.received))
        nack = next(p for p in client.received if p.command == "generic_nack")
        assert (nack.sequence, nack.status) == (4242, Status.ESME_RINVCMDID)
        assert (await submit(session, [sm()])).message_ids


async def test_graceful_shutdown_drains_then_unbinds(smsc: MiniSmsc) -> None:
    async def hold(client: Client, pdu: Pdu) -> int | None:
        return None

    smsc.submit_hook = hold
    session = SmppSession(smsc.profile(response_timeout=5.0))
    await session.start()
    assert await session.wait_bound(5)
    client = smsc.client
    tasks = [asyncio.create_task(submit(session, [sm(f"d{i}")])) for i in range(3)]
    await until(lambda: len(smsc.held) == 3)
    closing = asyncio.create_task(session.close(drain_timeout=5))
    await asyncio.sleep(0.1)
    assert not any(p.command == "unbind" for p in client.received)  # still draining
    with pytest.raises(SubmitError):
        await submit(session, [sm("late")])  # no new work while closing
    smsc.release_held()
    await asyncio.wait_for(closing, 5)
    results = await asyncio.gather(*tasks)
    assert all(r.message_ids for r in results)
    commands = [p.command for p in client.received]
    assert commands[-1] == "unbind" and commands.count("submit_sm") == 3


async def test_throttle_state_survives_a_reconnect(smsc: MiniSmsc) -> None:
    async with SmppSession(smsc.profile(rate=100.0), backoff_base=0.05) as session:
        assert await session.wait_bound(5)
        session.throttle.pushback()
        slowed = session.throttle.effective_rate
        assert slowed == 50.0
        await smsc.drop_all()
        await until(lambda: session.tx.stats.connects == 2 and session.bound)
        assert session.throttle.effective_rate == slowed and session.throttle.pushbacks == 1


async def test_submit_many_pipelines_in_order_with_outcomes_per_message(smsc: MiniSmsc) -> None:
    seen = 0

    async def mixed(client: Client, pdu: Pdu) -> int | None:
        nonlocal seen
        seen += 1
        if pdu.get("short_message") == b"bad":
            return Status.ESME_RINVDSTADR
        if seen == 2:  # the first try of the second part: throttled, then retried
            return Status.ESME_RTHROTTLED
        return Status.ESME_ROK

    smsc.submit_hook = mixed
    session = SmppSession(smsc.profile(window=3))
    session.throttle._pause.base = 0.01
    async with session:
        assert await session.wait_bound(5)
        messages = [[sm("a1"), sm("a2")], [sm("bad")], [sm(f"c{i}") for i in range(5)]]
        results = await session.submit_many(messages)
    first, second, third = results
    assert not isinstance(first, SubmitError) and len(first.message_ids) == 2
    assert isinstance(second, SubmitError) and not second.temporary
    assert not isinstance(third, SubmitError) and len(third.message_ids) == 5
    accepted = [p.get("short_message") for p in smsc.accepted.values()]
    assert sorted(accepted) == sorted([b"a1", b"a2", b"c0", b"c1", b"c2", b"c3", b"c4"])
    assert session.pushbacks == 1


async def test_unbind_from_the_smsc_is_answered_and_the_link_rebinds(smsc: MiniSmsc) -> None:
    async with SmppSession(smsc.profile(), backoff_base=0.05) as session:
        assert await session.wait_bound(5)
        resp = await smsc.client.request(Pdu("unbind"))
        assert resp.command == "unbind_resp" and resp.status == 0
        await until(lambda: session.tx.stats.connects == 2 and session.bound)
        assert (await submit(session, [sm()])).message_ids


def test_submit_sm_template_is_what_the_codec_encodes() -> None:
    from gateway.smpp import codec
    from gateway.smpp.errors import LocalProtocolError
    from gateway.smpp.fast import submit_sm_template

    for params in (
        sm(),
        {**sm(), "esm_class": 0x40, "data_coding": 8, "registered_delivery": 1},
        {**sm(), "service_type": "USSD", "ussd_service_op": 2, "its_session_info": 0x0700},
        {**sm(""), "message_payload": b"x" * 400},
    ):
        template = submit_sm_template(params)
        numbered = template[:12] + struct.pack(">L", 77) + template[16:]
        assert numbered == codec.encode(Pdu("submit_sm", 77, 0, params))
    with pytest.raises(LocalProtocolError):
        submit_sm_template({**sm(), "destination_addr": "4" * 30})


async def test_responses_the_fast_path_leaves_to_the_codec_are_matched(smsc: MiniSmsc) -> None:
    """submit_sm_resp with a TLV, a generic_nack, and responses cut into small pieces."""

    async def hold(client: Client, pdu: Pdu) -> int | None:
        return None

    smsc.submit_hook = hold
    async with SmppSession(smsc.profile(window=8)) as session:
        assert await session.wait_bound(5)
        sending = asyncio.create_task(session.submit_many([[sm(f"m{n}")] for n in range(3)]))
        await until(lambda: len(smsc.held) == 3)
        (client, tlv), (_, nack), (_, split) = smsc.held
        data = (
            client.conn.send(
                Pdu("submit_sm_resp", tlv.sequence, 0, {"message_id": "A1"}, ((0x1400, b"x"),))
            )
            + client.conn.send(Pdu("generic_nack", nack.sequence, Status.ESME_RINVCMDLEN))
            + client.conn.send(split.response(Status.ESME_ROK, message_id="B2"))
        )
        for start in range(0, len(data), 7):
            client.writer.write(data[start : start + 7])
            await client.writer.drain()
        first, second, third = await sending
    assert not isinstance(first, SubmitError) and first.message_ids == ("A1",)
    assert isinstance(second, SubmitError) and second.status == Status.ESME_RINVCMDLEN
    assert not isinstance(third, SubmitError) and third.message_ids == ("B2",)


_CSTRINGS = st.text(alphabet=st.characters(max_codepoint=0x17F), max_size=24)
_OCTETS = st.one_of(st.integers(-2, 300), st.booleans(), st.just("1"))


@settings(max_examples=300, deadline=None)
@given(
    strings=st.dictionaries(
        st.sampled_from(
            [
                "service_type",
                "source_addr",
                "destination_addr",
                "schedule_delivery_time",
                "validity_period",
            ]
        ),
        _CSTRINGS,
    ),
    octets=st.dictionaries(
        st.sampled_from(
            ["source_addr_ton", "dest_addr_npi", "esm_class", "registered_delivery", "data_coding"]
        ),
        _OCTETS,
    ),
    short_message=st.one_of(st.binary(max_size=300), st.text(max_size=3)),
)
def test_submit_sm_template_agrees_with_the_codec(
    strings: dict[str, str], octets: dict[str, Any], short_message: Any
) -> None:
    """Same bytes as codec.encode, or the same refusal, for odd values too."""
    from gateway.smpp import codec
    from gateway.smpp.errors import LocalProtocolError
    from gateway.smpp.fast import submit_sm_template

    params = {**strings, **octets, "short_message": short_message}
    try:
        expected: bytes | int = codec.encode(Pdu("submit_sm", 9, 0, params))
    except LocalProtocolError as exc:
        expected = exc.status
    try:
        template = submit_sm_template(params)
        got: bytes | int = template[:12] + struct.pack(">L", 9) + template[16:]
    except LocalProtocolError as exc:
        got = exc.status
    assert got == expected


async def test_submit_many_reports_each_message_as_it_is_answered(smsc: MiniSmsc) -> None:
    """``on_result`` fires per message when its last part is answered, not when the batch is:
    a sender refills the window without waiting for the slowest answer."""

    async def hold(client: Client, pdu: Pdu) -> int | None:
        return None

    smsc.submit_hook = hold
    reported: list[tuple[int, Any]] = []
    async with SmppSession(smsc.profile(window=8)) as session:
        assert await session.wait_bound(5)
        messages = [[sm("a")], [sm("b1"), sm("b2")], [sm("c")]]
        sending = asyncio.create_task(
            session.submit_many(messages, on_result=lambda m, r: reported.append((m, r)))
        )
        await until(lambda: len(smsc.held) == 4)
        by_text = {pdu.get("short_message"): (client, pdu) for client, pdu in smsc.held}
        smsc.accept(*by_text[b"c"])
        smsc.accept(*by_text[b"b1"])
        await until(lambda: len(reported) == 1)
        assert reported[0][0] == 2 and not sending.done()  # "c" is done, "b" waits for b2
        smsc.accept(*by_text[b"b2"])
        await until(lambda: len(reported) == 2)
        assert reported[1][0] == 1 and len(reported[1][1].message_ids) == 2
        smsc.accept(*by_text[b"a"])
        results = await sending
    assert [m for m, _ in reported] == [2, 1, 0]
    assert [r for _, r in sorted(reported, key=lambda x: x[0])] == results


async def test_submit_errors_say_whether_anything_was_sent(smsc: MiniSmsc) -> None:
    """A part the link never wrote (not bound) is not a try; one lost in flight is."""
    session = SmppSession(smsc.profile(), backoff_base=5.0)
    with pytest.raises(SubmitError) as never:
        await submit(session, [sm()])  # never started: not bound
    assert never.value.temporary and not never.value.attempted

    async def hold(client: Client, pdu: Pdu) -> int | None:
        return None

    smsc.submit_hook = hold
    async with session:
        assert await session.wait_bound(5)
        sending = asyncio.create_task(session.submit_many([[sm("a")], [sm("b")]]))
        await until(lambda: len(smsc.held) == 2)
        await smsc.drop_all()
        lost = await sending
        again = await session.submit_many([[sm("c")]])  # reconnecting (5 s back-off)
    assert all(isinstance(r, SubmitError) and r.temporary and r.attempted for r in lost)
    [down] = again
    assert isinstance(down, SubmitError) and not down.attempted


async def test_inbound_back_pressure_stops_reading_while_turns_cannot_finish(
    smsc: MiniSmsc,
) -> None:
    """Turns that cannot finish (a stalled store): the link stops reading at ``max_inbound`` MO
    in hand instead of buffering every one the SMSC sends; when they finish it reads again and
    every MO is answered."""
    release = asyncio.Event()
    handled: list[str] = []

    class Stalled:
        async def __call__(self, event: Any) -> None:
            await release.wait()
            handled.append(event.text if hasattr(event, "text") else "?")

    from gateway.esme.inbound import InboundProcessor

    inbound = InboundProcessor(Stalled())
    session = SmppSession(smsc.profile(), inbound, max_inbound=8)
    await session.start()
    try:
        await session.wait_bound(5)
        base = {"source_addr_ton": 1, "source_addr_npi": 1, "dest_addr_ton": 0}
        client = smsc.client
        for i in range(200):
            client.write(
                Pdu(
                    "deliver_sm",
                    params={
                        **base,
                        "source_addr": f"48600{i:06d}",
                        "destination_addr": "2424",
                        "short_message": f"M{i}".encode(),
                    },
                )
            )
        link = session.links[0]
        await until(lambda: link.stats.reads_paused == 1)
        await asyncio.sleep(0.2)  # time for more to arrive, were the link still reading
        assert len(link._tasks) == 8
        assert link.stats.inbound < 200
        release.set()
        await until(lambda: len(handled) == 200, within=10)
        assert link.stats.inbound == 200
    finally:
        await session.close()
