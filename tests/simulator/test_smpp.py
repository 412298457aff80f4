"""The simulator against smpplib's blocking client: binds, submits with receipts, MO, USSD."""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

import pytest
import smpplib.exceptions
import smpplib.smpp

from gateway.smpp.pdu import Status, UssdOp
from gateway.sms.decoding import decode_short_message
from gateway.sms.text import encode_message
from simulator.controller import SimulatorController
from tests.simulator.peer import Peer

MSISDN = "48600000001"
GSM = "Saldo: 12,50 zl. Dziekujemy!"
POLISH = "Zażółć gęślą jaźń — Twój pakiet: 120 min"
LONG = "".join(f"{i % 10}" for i in range(300))


async def bound(sim: SimulatorController, mode: str = "transceiver", **kw: object) -> Peer:
    peer = Peer(sim.smpp_address, mode, **kw)  # type: ignore[arg-type]
    await asyncio.to_thread(peer.bind)
    return peer


@pytest.mark.parametrize("mode", ["transmitter", "receiver", "transceiver"])
async def test_binds_in_each_mode(sim: SimulatorController, mode: str) -> None:
    peer = await bound(sim, mode)
    try:
        modes = [s["mode"] for s in sim.smsc.describe()["sessions"]]
        assert modes == [{"transmitter": "tx", "receiver": "rx", "transceiver": "trx"}[mode]]
    finally:
        await asyncio.to_thread(peer.close)


@pytest.mark.parametrize(
    ("system_id", "password", "status"),
    [("idea24", "wrong", Status.ESME_RINVPASWD), ("nobody", "idea24", Status.ESME_RINVSYSID)],
)
async def test_wrong_credentials_refused(
    sim: SimulatorController, system_id: str, password: str, status: int
) -> None:
    peer = Peer(sim.smpp_address, system_id=system_id, password=password)
    with pytest.raises(smpplib.exceptions.PDUError) as info:
        await asyncio.to_thread(peer.bind)
    assert info.value.args[1] == status
    await asyncio.to_thread(peer.client.disconnect)


async def test_several_binds_per_account(sim: SimulatorController) -> None:
    peers = [await bound(sim) for _ in range(3)] + [
        await bound(sim, system_id="other", password="secret")
    ]
    try:
        assert len(sim.smsc.describe()["sessions"]) == 4
    finally:
        for peer in peers:
            await asyncio.to_thread(peer.close)


def _submit_text(peer: Peer, text: str, long: str, ref: int) -> int:
    parts = encode_message(text, policy="ucs2", long=long, ref=ref)  # type: ignore[arg-type]
    for part in parts:
        peer.submit(
            destination_addr=MSISDN,
            short_message=part.short_message,
            data_coding=part.data_coding,
            esm_class=part.esm_class | 0x03,  # store-and-forward mode bits set, as many do
            registered_delivery=0x11,  # receipt + intermediate bit: a bit field, not a value
            **part.tlvs,
        )
    return len(parts)


@pytest.mark.parametrize("long", ["udh", "udh16", "sar", "payload"])
@pytest.mark.parametrize("text", [GSM, POLISH, LONG], ids=["gsm", "polish", "300"])
async def test_submit_each_form_gets_matching_receipts(
    sim: SimulatorController, text: str, long: str
) -> None:
    peer = await bound(sim)
    try:
        n = await asyncio.to_thread(_submit_text, peer, text, long, 7)
        await asyncio.to_thread(
            peer.pump, lambda: len(peer.responses) >= n and len(peer.delivered) >= n
        )
    finally:
        await asyncio.to_thread(peer.close)
    ids = {r.message_id.decode() for r in peer.responses}
    assert len(ids) == n and all(r.status == 0 for r in peer.responses)
    receipted = {d.receipted_message_id.decode() for d in peer.delivered}
    assert receipted == ids
    for d in peer.delivered:
        assert d.esm_class & 0x04 and d.message_state == 2
        assert f"id:{d.receipted_message_id.decode()} ".encode() in d.short_message
        assert b"stat:DELIVRD" in d.short_message
    [message] = sim.messages(MSISDN)
    assert message.text == text
    assert message.parts == n
    assert set(message.message_ids) == ids
    assert message.receipt == "DELIVRD"


async def test_receipts_go_to_the_receiver_of_a_tx_rx_pair(sim: SimulatorController) -> None:
    tx = await bound(sim, "transmitter")
    rx = await bound(sim, "receiver")
    other = await bound(sim, "receiver", system_id="other", password="secret")
    try:
        await asyncio.to_thread(_submit_text, tx, GSM, "udh", 1)
        await asyncio.to_thread(tx.pump, lambda: len(tx.responses) == 1)
        await asyncio.to_thread(rx.pump, lambda: len(rx.delivered) == 1)
        await asyncio.to_thread(other.read_once)
        assert other.delivered == [] and tx.delivered == []
        assert rx.delivered[0].receipted_message_id == tx.responses[0].message_id
    finally:
        for peer in (tx, rx, other):
            await asyncio.to_thread(peer.close)


@pytest.mark.parametrize(("data_coding", "codec"), [(1, "ascii"), (3, "latin-1"), (8, "utf-16-be")])
async def test_data_codings(sim: SimulatorController, data_coding: int, codec: str) -> None:
    text = "Café olé" if data_coding == 3 else "Plain text"
    peer = await bound(sim)
    try:
        peer.submit(
            destination_addr=MSISDN, short_message=text.encode(codec), data_coding=data_coding
        )
        await asyncio.to_thread(peer.pump, lambda: len(peer.responses) == 1)
    finally:
        await asyncio.to_thread(peer.close)
    [message] = sim.messages(MSISDN)
    assert (message.text, message.data_coding) == (text, data_coding)


async def test_message_ids_are_unique_over_many_submits(sim: SimulatorController) -> None:
    peer = await bound(sim)
    try:
        for i in range(150):  # pipelined: nothing is read until all are sent
            peer.submit(destination_addr=MSISDN, short_message=f"m{i}".encode())
        await asyncio.to_thread(peer.pump, lambda: len(peer.responses) == 150)
    finally:
        await asyncio.to_thread(peer.close)
    assert len({r.message_id for r in peer.responses}) == 150
    assert len(sim.messages(MSISDN)) == 150


def _reassemble(pdus: list) -> tuple[str, int]:  # type: ignore[type-arg]
    parts: dict[int, str] = {}
    for pdu in pdus:
        udh, text = decode_short_message(
            pdu.short_message, pdu.data_coding, bool(pdu.esm_class & 0x40)
        )
        parts[udh.seq if udh and udh.seq else 1] = text
    return "".join(parts[k] for k in sorted(parts)), pdus[0].data_coding


async def test_injected_mo_reaches_a_receiver_split_like_a_handset(
    sim: SimulatorController,
) -> None:
    peer = await bound(sim, "receiver")
    text = "Proszę o fakturę za październik. " * 6  # Polish and long: UCS-2 in 3 parts
    try:
        await sim.inject_mo(MSISDN, "2424", text)
        await asyncio.to_thread(peer.pump, lambda: len(peer.delivered) >= 3)
    finally:
        await asyncio.to_thread(peer.close)
    assert {p.source_addr for p in peer.delivered} == {MSISDN.encode()}
    assert {p.destination_addr for p in peer.delivered} == {b"2424"}
    assert all(p.esm_class & 0x40 for p in peer.delivered)
    assert _reassemble(peer.delivered) == (text, 8)
    [mo] = sim.messages(MSISDN)
    assert (mo.direction, mo.parts, mo.data_coding) == ("mo", 3, 8)


async def test_mo_waits_for_a_receiver_and_goes_round_robin(sim: SimulatorController) -> None:
    for i in range(4):
        await sim.inject_mo(MSISDN, "2424", f"MO {i}")
    tx = await bound(sim, "transmitter")  # cannot receive: nothing goes there
    a = await bound(sim, "transceiver")
    b = await bound(sim, "receiver")
    try:
        await sim.inject_mo(MSISDN, "2424", "MO 4", ack_timeout=None)
        await sim.inject_mo(MSISDN, "2424", "MO 5")

        def both() -> bool:
            a.read_once()
            b.read_once()
            return len(a.delivered) + len(b.delivered) >= 6

        await asyncio.to_thread(a.pump, both)
        await asyncio.to_thread(tx.read_once)
    finally:
        for peer in (tx, a, b):
            await asyncio.to_thread(peer.close)
    assert tx.delivered == []
    texts = sorted(p.short_message.decode() for p in a.delivered + b.delivered)
    assert texts == [f"MO {i}" for i in range(6)]
    assert a.delivered and b.delivered


async def test_ussd_dialogue_ops_1_2_18_17(sim: SimulatorController) -> None:
    def answer(pdu: object) -> list[dict[str, object]]:
        op = pdu.ussd_service_op  # type: ignore[attr-defined]
        its = pdu.its_session_info  # type: ignore[attr-defined]
        text = pdu.short_message.decode()  # type: ignore[attr-defined]
        common = {
            "destination_addr": pdu.source_addr.decode(),  # type: ignore[attr-defined]
            "service_type": "USSD",
            "its_session_info": its,
        }
        if op == UssdOp.PSSR_INDICATION:
            return [
                {
                    **common,
                    "short_message": b"1 Konto\n2 Pakiet",
                    "ussd_service_op": UssdOp.USSR_REQUEST,
                }
            ]
        return [
            {
                **common,
                "short_message": f"Wybrano {text}".encode(),
                "ussd_service_op": UssdOp.PSSR_RESPONSE,
            }
        ]

    peer = await bound(sim, on_deliver=answer)
    stop = False
    server = asyncio.create_task(asyncio.to_thread(peer.serve, lambda: stop))
    try:
        menu = await sim.ussd(MSISDN, "*100#", wait=5)
        assert (menu.text, menu.end, menu.op) == ("1 Konto\n2 Pakiet", False, UssdOp.USSR_REQUEST)
        final = await sim.ussd(MSISDN, "2", wait=5)
        assert (final.text, final.end, final.op) == ("Wybrano 2", True, UssdOp.PSSR_RESPONSE)
    finally:
        stop = True
        await server
        await asyncio.to_thread(peer.close)
    first, second = peer.delivered
    assert (first.service_type, first.ussd_service_op, first.short_message) == (
        b"USSD",
        1,
        b"*100#",
    )
    assert (second.ussd_service_op, second.short_message) == (UssdOp.USSR_CONFIRM, b"2")
    assert first.its_session_info == second.its_session_info != 0
    kinds = [(m.direction, m.ussd_op, m.end) for m in sim.messages(MSISDN)]
    assert kinds == [("mo", 1, None), ("mt", 2, False), ("mo", 18, None), ("mt", 17, True)]


async def test_ussd_session_times_out() -> None:
    async with SimulatorController(ussd_timeout=0.2) as sim:
        peer = await bound(sim, "receiver")
        try:
            with pytest.raises(TimeoutError):
                await sim.ussd(MSISDN, "*100#", wait=2)
            assert sim.smsc.ussd.get(MSISDN) is None
            assert sim.messages(MSISDN)[-1].end is True
        finally:
            await asyncio.to_thread(peer.close)


def _raw(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=3)
    return sock


def _read_pdu(sock: socket.socket) -> tuple[int, int, int, bytes]:
    head = b""
    while len(head) < 16:
        chunk = sock.recv(16 - len(head))
        if not chunk:
            raise ConnectionError("closed")
        head += chunk
    length, command_id, status, seq = struct.unpack(">LLLL", head)
    body = b""
    while len(body) < length - 16:
        body += sock.recv(length - 16 - len(body))
    return command_id, status, seq, body


def _malformed_exchange(address: tuple[str, int]) -> list[tuple[int, int, int]]:
    with _raw(address) as sock:
        answers = []
        sock.sendall(struct.pack(">LLLL", 16, 0x00000099, 0, 5))  # unknown command id
        answers.append(_read_pdu(sock)[:3])
        body = b"idea24\x00idea24"  # bind_transmitter with the password's NUL missing
        sock.sendall(struct.pack(">LLLL", 16 + len(body), 2, 0, 6) + body)
        answers.append(_read_pdu(sock)[:3])
        sock.sendall(struct.pack(">LLLL", 16, 0x15, 0, 7))  # still alive: enquire_link
        answers.append(_read_pdu(sock)[:3])
        sock.sendall(struct.pack(">LLLL", 16, 4, 0, 8))  # submit_sm without a body
        answers.append(_read_pdu(sock)[:3])
        submit = smpplib.smpp.make_pdu(
            "submit_sm", need_sequence=False, destination_addr=MSISDN, short_message=b"x"
        )
        submit.sequence = 10
        sock.sendall(submit.generate())  # a good submit_sm, but before any bind
        answers.append(_read_pdu(sock)[:3])
        sock.sendall(struct.pack(">LLLL", 8, 4, 0, 9)[:8] + b"\x00" * 8)  # length 8: framing lost
        answers.append(_read_pdu(sock)[:3])
        sock.settimeout(2)
        assert sock.recv(10) == b""  # then the SMSC hangs up
        return answers


async def test_unknown_and_malformed_pdus_answered_without_crashing(
    sim: SimulatorController,
) -> None:
    answers = await asyncio.to_thread(_malformed_exchange, sim.smpp_address)
    assert answers[0] == (0x80000000, Status.ESME_RINVCMDID, 5)
    assert answers[1][0] in (0x80000000, 0x80000002) and answers[1][1] != 0 and answers[1][2] == 6
    assert answers[2] == (0x80000015, 0, 7)
    assert answers[3] == (0x80000000, Status.ESME_RINVCMDLEN, 8)
    assert answers[4] == (0x80000004, Status.ESME_RINVBNDSTS, 10)
    assert answers[5][0] == 0x80000000 and answers[5][1] == Status.ESME_RINVCMDLEN
    peer = await bound(sim)  # the server is still fine
    await asyncio.to_thread(peer.close)


async def test_unsupported_command_gets_generic_nack(sim: SimulatorController) -> None:
    def exchange() -> tuple[int, int, int]:
        peer = Peer(sim.smpp_address)
        peer.bind()
        sock = peer.client._socket
        sock.sendall(struct.pack(">LLLL", 16 + 2, 0x08, 0, 77) + b"\x00\x00")  # cancel_sm, short
        answer = _read_pdu(sock)[:3]
        peer.close()
        return answer

    command_id, status, seq = await asyncio.to_thread(exchange)
    assert seq == 77 and status != 0 and command_id in (0x80000000, 0x80000008)


async def test_enquire_link_both_ways_and_silent_session_closed() -> None:
    async with SimulatorController(enquire_link_interval=0.1, inactivity_timeout=0.6) as sim:
        peer = await bound(sim)
        try:
            await asyncio.to_thread(peer.pump, lambda: peer.enquire_links >= 2)
            silent = await asyncio.to_thread(_raw, sim.smpp_address)
            silent.settimeout(3)
            # A peer that never answers: the SMSC sends enquire_link, then hangs up.
            data = await asyncio.to_thread(silent.recv, 100)
            assert struct.unpack(">L", data[4:8])[0] == 0x15
            rest = await asyncio.to_thread(silent.recv, 100)
            assert rest == b""
            silent.close()
        finally:
            await asyncio.to_thread(peer.close)


async def test_unbind_answered_and_connection_closed(sim: SimulatorController) -> None:
    peer = await bound(sim)
    response = await asyncio.to_thread(peer.client.unbind)
    assert response.command == "unbind_resp"
    await asyncio.to_thread(peer.client.disconnect)


async def test_stop_unbinds_bound_peers() -> None:
    sim = SimulatorController()
    await sim.start()
    peer = await bound(sim)
    stopping = asyncio.create_task(sim.stop())
    pdu = await asyncio.to_thread(peer.client.read_pdu)
    assert pdu.command == "unbind"
    await stopping
    await asyncio.to_thread(peer.client.disconnect)


def _submit_plain(peer: Peer, n: int) -> None:
    for i in range(n):  # pipelined: nothing is read until all are sent
        peer.submit(destination_addr=MSISDN, short_message=f"m{i}".encode(), registered_delivery=1)


async def test_pipelined_receipts_shared_by_the_accounts_receivers(
    sim: SimulatorController,
) -> None:
    tx = await bound(sim, "transmitter")
    receivers = [await bound(sim, "receiver") for _ in range(2)]
    n = 120  # more than a window of 64 outstanding
    try:
        await asyncio.to_thread(_submit_plain, tx, n)
        await asyncio.to_thread(tx.pump, lambda: len(tx.responses) == n)

        def all_receipts() -> bool:
            return sum(len(rx.delivered) for rx in receivers) >= n

        await asyncio.gather(*(asyncio.to_thread(rx.pump, all_receipts) for rx in receivers))
    finally:
        for peer in (tx, *receivers):
            await asyncio.to_thread(peer.close)
    ids = [r.message_id.decode() for r in tx.responses]
    receipted = [d.receipted_message_id.decode() for rx in receivers for d in rx.delivered]
    assert sorted(receipted) == sorted(ids) and len(set(ids)) == n
    assert all(rx.delivered for rx in receivers), "receipts go round-robin"
    messages = sim.messages(MSISDN)
    assert [m.text for m in messages] == [f"m{i}" for i in range(n)]
    assert {m.receipt for m in messages} == {"DELIVRD"}


async def test_receipt_waits_for_a_receiver(sim: SimulatorController) -> None:
    tx = await bound(sim, "transmitter")
    try:
        await asyncio.to_thread(_submit_plain, tx, 1)
        await asyncio.to_thread(tx.pump, lambda: len(tx.responses) == 1)
        assert sim.smsc.describe()["undelivered"] == 1
        rx = await bound(sim, "receiver")
        await asyncio.to_thread(rx.pump, lambda: len(rx.delivered) == 1)
        await asyncio.to_thread(rx.close)
    finally:
        await asyncio.to_thread(tx.close)
    assert rx.delivered[0].receipted_message_id == tx.responses[0].message_id
    assert tx.delivered == []


async def test_receipt_refused_for_now_is_delivered_again(sim: SimulatorController) -> None:
    peer = await bound(sim)
    answers = iter([Status.ESME_RX_T_APPN])

    def refuse_first(pdu: object, **_: object) -> int | None:
        peer._received(pdu)
        return next(answers, None)

    peer.client.set_message_received_handler(refuse_first)
    try:
        await asyncio.to_thread(_submit_plain, peer, 1)
        await asyncio.to_thread(peer.pump, lambda: len(peer.delivered) == 2)
        for _ in range(50):  # the second, acknowledged copy records the state
            if sim.messages(MSISDN)[0].receipt is not None:
                break
            await asyncio.sleep(0.02)
    finally:
        await asyncio.to_thread(peer.close)
    first, second = peer.delivered
    assert first.receipted_message_id == second.receipted_message_id
    assert first.receipted_message_id == peer.responses[0].message_id
    assert sim.messages(MSISDN)[0].receipt == "DELIVRD"


async def test_query_sm_reports_the_final_state(sim: SimulatorController) -> None:
    sim.faults.update(receipt_states=["UNDELIV"])
    peer = await bound(sim)
    answers: list[Any] = []
    peer.client.set_query_resp_handler(answers.append)

    def query(message_id: bytes) -> None:
        pdu = smpplib.smpp.make_pdu(
            "query_sm", client=peer.client, message_id=message_id.decode(), source_addr="2424"
        )
        peer.client.send_pdu(pdu)

    try:
        await asyncio.to_thread(_submit_plain, peer, 1)
        await asyncio.to_thread(peer.pump, lambda: len(peer.responses) == 1)
        await asyncio.to_thread(query, peer.responses[0].message_id)
        await asyncio.to_thread(query, b"ffffffffff")
        await asyncio.to_thread(peer.pump, lambda: len(answers) == 2)
    finally:
        await asyncio.to_thread(peer.close)
    known, unknown = answers
    assert (known.status, known.message_state) == (0, 5)
    assert known.message_id == peer.responses[0].message_id
    assert unknown.status == Status.ESME_RINVMSGID


def _raw_receiver(address: tuple[str, int]) -> socket.socket:
    sock = _raw(address)
    bind = smpplib.smpp.make_pdu(
        "bind_receiver", need_sequence=False, system_id="idea24", password="idea24"
    )
    bind.sequence = 1
    sock.sendall(bind.generate())
    if _read_pdu(sock)[:2] != (0x80000001, 0):
        sock.close()
        raise AssertionError("bind_receiver refused")
    return sock


async def test_a_receiver_that_stops_answering_holds_up_nobody() -> None:
    async with SimulatorController({"idea24": "idea24", "other": "secret"}, window=8) as sim:
        slow = await asyncio.to_thread(_raw_receiver, sim.smpp_address)
        try:
            for i in range(30):
                await sim.inject_mo(MSISDN, "2424", f"MO {i}")
            [stuck] = sim.smsc.describe()["sessions"]
            assert (stuck["outstanding"], stuck["pending"]) == (8, 22)  # the window, then a queue
            other = await bound(sim, system_id="other", password="secret")
            try:
                await asyncio.to_thread(_submit_plain, other, 3)
                await asyncio.to_thread(
                    other.pump, lambda: len(other.responses) == 3 and len(other.delivered) == 3
                )
            finally:
                await asyncio.to_thread(other.close)

            def drain() -> list[bytes]:
                texts: list[bytes] = []
                while len(texts) < 30:
                    command_id, _status, seq, body = _read_pdu(slow)
                    assert command_id == 0x05
                    slow.sendall(struct.pack(">LLLL", 17, 0x80000005, 0, seq) + b"\x00")
                    texts.append(body)
                return texts

            bodies = await asyncio.to_thread(drain)
        finally:
            slow.close()
    assert all(f"MO {i}".encode() in b for i, b in enumerate(bodies))
