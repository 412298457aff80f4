"""Limits across all subscribers: the portal password cap and the code-guessing guard."""

from __future__ import annotations

import pytest

from backend.errors import WrongCode
from fsm.store import MemoryStore
from gateway.metrics import Metrics
from gateway.web.guards import CodeGuard, GlobalRateLimited, GuardedBackend, PasswordCap


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Backend:
    """Every code is wrong except 111111; records what reached it and in which lockout."""

    def __init__(self) -> None:
        self.checked: list[tuple[str, str]] = []
        self.channels: list[str] = []

    async def check_subscriber_code(
        self, msisdn: str, code: str, scope: str = "number", *, code_channel: str = "handset"
    ) -> None:
        self.checked.append((msisdn, code))
        self.channels.append(code_channel)
        if code != "111111":
            raise WrongCode(2)

    async def activate(
        self,
        msisdn: str,
        code: str,
        channel: str,
        *,
        subscriber_code=None,
        code_channel: str = "handset",
    ) -> str:
        if subscriber_code is not None:
            await self.check_subscriber_code(msisdn, subscriber_code, code_channel=code_channel)
        return "on"

    async def change_address(
        self,
        msisdn: str,
        address: str,
        channel: str,
        *,
        subscriber_code: str,
        code_channel: str = "handset",
    ) -> str:
        await self.check_subscriber_code(
            msisdn, subscriber_code, "account", code_channel=code_channel
        )
        return "moved"

    async def code_gate(self, msisdn: str, change: str, *, code_channel: str = "handset") -> str:
        return code_channel

    async def summary(self, msisdn: str) -> str:
        return "summary"


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_password_cap_counts_every_number_together() -> None:
    clock = Clock()
    metrics = Metrics()
    cap = PasswordCap(MemoryStore(clock=clock), 3, metrics)
    for _ in range(3):
        await cap.take()
    with pytest.raises(GlobalRateLimited) as exc:
        await cap.take()
    assert exc.value.retry_after == 60.0
    assert sample(metrics, "idea24_password_requests_refused_total", scope="global") == 1
    clock.now += 61  # a new minute
    await cap.take()


async def test_a_guessing_run_over_http_is_slowed_and_handsets_are_not() -> None:
    clock = Clock()
    metrics = Metrics()
    store = MemoryStore(clock=clock)
    guard = CodeGuard(store, 5, metrics, clock=clock)
    backend = Backend()
    http = GuardedBackend(backend, guard, "http")
    smpp = GuardedBackend(backend, guard, "smpp")
    # A run: one wrong code each for many numbers (under every number's own lockout).
    for i in range(6):
        with pytest.raises(WrongCode):
            await http.check_subscriber_code(f"4870000{i:04d}", "000000")
    assert sample(metrics, "idea24_code_guessing_detected_total") == 1
    assert guard.alarmed
    # Further guesses over HTTP are refused before they reach the backend: no subscriber's
    # failure count (and lockout) moves, and the run slows to nothing for the window.
    for i in range(6, 50):
        with pytest.raises(GlobalRateLimited):
            await http.activate(f"4870000{i:04d}", "ROAMING", "ussd", subscriber_code="000000")
    assert len(backend.checked) == 6
    assert backend.channels == ["aggregator"] * 6  # HTTP counts in its own lockout
    assert sample(metrics, "idea24_code_checks_slowed_total") == 44
    # The subscriber on the handset (SMPP) is checked as always, right code or wrong.
    assert await smpp.activate("48600000001", "ROAMING", "sms", subscriber_code="111111") == "on"
    with pytest.raises(WrongCode):
        await smpp.check_subscriber_code("48600000002", "999999")
    assert sample(metrics, "idea24_wrong_codes_total", origin="smpp") == 1
    assert backend.channels[6:] == ["handset", "handset"]
    assert await http.code_gate("48600000001", "tariff") == "aggregator"
    assert await smpp.code_gate("48600000001", "tariff") == "handset"
    assert sample(metrics, "idea24_wrong_codes_total", origin="http") == 6
    # Calls without a code, and other methods, pass straight through.
    assert await http.activate("48600000003", "ROAMING", "ussd") == "on"
    assert await http.summary("48600000003") == "summary"
    # The window passes: HTTP checks are tried again.
    clock.now += 61
    assert not guard.alarmed
    await http.check_subscriber_code("48600000001", "111111")


async def test_account_wide_changes_carry_their_code_through_the_guard() -> None:
    """Address and payment changes check the (account) code themselves: counted and slowed
    like any other code check."""
    clock = Clock()
    metrics = Metrics()
    guard = CodeGuard(MemoryStore(clock=clock), 2, metrics, clock=clock)
    http = GuardedBackend(Backend(), guard, "http")
    for i in range(3):
        with pytest.raises(WrongCode):
            await http.change_address(f"4870000{i:04d}", "x", "ussd", subscriber_code="000000")
    assert sample(metrics, "idea24_wrong_codes_total", origin="http") == 3
    with pytest.raises(GlobalRateLimited):
        await http.change_address("48700009999", "x", "ussd", subscriber_code="999999")
