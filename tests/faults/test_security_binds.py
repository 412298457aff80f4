"""SMPP bind brute force against the simulator: wrong binds are logged without the password and,
after a few, refused for the whole peer address — the right password included — while other
addresses keep binding. Also: a non-ASCII password is just a wrong password (it once crashed
the session, ``compare_digest`` refuses non-ASCII str).
"""

from __future__ import annotations

import logging

import pytest

from gateway.logs import JsonFormatter
from gateway.smpp.pdu import Status
from simulator.bindguard import BindGuard, peer_host
from simulator.controller import SimulatorController
from tests.faults.fuzz_support import RawPeer, bind

PASSWORD = "Bnd-Pw7!"  # SMPP passwords are at most 8 characters
GUESSES = 200


def test_guard_counts_per_host_in_a_window_and_blocks() -> None:
    guard = BindGuard(max_failures=3, window=10.0, block=60.0, max_peers=2)
    assert not guard.failed("a", 0.0) and not guard.failed("a", 1.0)
    assert not guard.failed("a", 20.0)  # the first two left the window
    assert not guard.failed("a", 21.0)
    assert guard.failed("a", 22.0)  # three within 10 s
    assert guard.blocked("a", 30.0) and not guard.blocked("a", 82.1)
    assert not guard.blocked("b", 30.0)
    guard.failed("b", 0.0)
    guard.succeeded("b")
    assert guard.failures("b") == 0
    for host in ("c", "d", "e"):
        guard.failed(host, 0.0)
    assert len(guard) == 2  # bounded: the oldest hosts are forgotten
    assert peer_host("127.0.0.1:4000") == "127.0.0.1" and peer_host("::1:4000") == "::1"
    with pytest.raises(ValueError):
        BindGuard(max_failures=0)


async def _bind(host: str, port: int, system_id: str, password: str) -> int:
    peer = await RawPeer.connect(host, port)
    try:
        peer.send(bind(1, system_id, password))
        return (await peer.read_response(1)).status
    finally:
        await peer.aclose()


async def test_bind_guessing_is_logged_masked_and_rate_limited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    guard = BindGuard(max_failures=5, window=60.0, block=300.0)
    statuses: dict[str, int] = {}
    async with SimulatorController(accounts={"idea24": PASSWORD}, bind_guard=guard) as sim:
        host, port = sim.smpp_address
        guesses = [f"g{i:05d}" for i in range(GUESSES)]
        guesses[50] = guesses[150] = PASSWORD  # the right one, after the address was blocked
        guesses[3] = "haslo-é"  # non-ASCII: a wrong password, not a crash
        right_accepted = 0
        for i, guess in enumerate(guesses):
            # One connection, many binds: the session stays OPEN after a refused bind.
            status = await _bind(host, port, "idea24" if i % 7 else "1d3a24-typo", guess)
            name = Status(status).name
            statuses[name] = statuses.get(name, 0) + 1
            if guess == PASSWORD:
                assert status == Status.ESME_RBINDFAIL
                right_accepted += status == 0
        # Another address is not affected: ::1 is not available everywhere, so the guard's
        # view of a second host is checked directly, and the blocked host stays blocked.
        assert not guard.blocked("10.0.0.9", sim.smsc.now())
        assert guard.blocked("127.0.0.1", sim.smsc.now())
        guard.succeeded("127.0.0.1")  # an operator unblocks (or the block runs out)
        assert await _bind(host, port, "idea24", PASSWORD) == Status.ESME_ROK
    refused = [r for r in caplog.records if r.getMessage() == "bind refused: wrong credentials"]
    assert len(refused) == 5  # the guessing that reached the credential check
    assert statuses == {"ESME_RINVPASWD": 4, "ESME_RINVSYSID": 1, "ESME_RBINDFAIL": GUESSES - 5}
    assert right_accepted == 0
    formatter = JsonFormatter()
    logged = "\n".join(formatter.format(r) for r in caplog.records)
    assert "1d3a24-typo" not in logged and "<unknown, 11 chars>" in logged
    leaked = [g for g in set(guesses) if g in logged]
    assert not leaked, leaked
    print(
        f"\nbind guessing: {GUESSES} binds from one address, 5 checked (4 wrong password, "
        f"1 unknown system_id), {GUESSES - 5} refused unchecked (right password among them, "
        f"{right_accepted} accepted); {len(refused)} log lines, 0 passwords in them"
    )
