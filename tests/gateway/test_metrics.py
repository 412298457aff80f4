"""/metrics: the bind pool's counters read per scrape, turn outcomes, the outbox depth."""

from __future__ import annotations

import math
from typing import Any

from fsm.runtime import Reply
from gateway.metrics import Metrics
from gateway.router import Router
from gateway.sms.events import InboundMessage


def samples(metrics: Metrics) -> dict[str, float]:
    """The rendered registry as {"name{labels}": value}."""
    out = {}
    for line in metrics.render().decode().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def snapshot(bound: bool = True, pushbacks: int = 0) -> dict[str, Any]:
    """The shape of ``BindPool.snapshot()``, with numbers a test can tell apart."""
    bind = {
        "bound": bound,
        "window": 10,
        "in_flight": 3,
        "submitted_parts": 40,
        "pushbacks": pushbacks,
        "effective_rate": 100.0,
        "timeouts": 2,
        "connects": 5,
        "sent": 30,
        "retried": 4,
        "failed": 1,
        "late_responses": 0,
        "late_saved": 0,
        "resent_unanswered": 0,
    }
    return {
        "binds": {"smsc-a": bind, "smsc-b": {**bind, "bound": False, "sent": 7}},
        "inbound": {"messages": 50, "receipts": 12, "duplicates": 6, "parts_waiting": 0},
        "delivery": {
            "submitted": 37,
            "delivered": 20,
            "failed": 2,
            "receipts": 12,
            "receipt_states": {"DELIVERED": 9, "UNDELIVERABLE": 2, "EXPIRED": 1},
            "early": 0,
            "parked": 8,
            "relayed_out": 11,
            "relay_dropped": 1,
            "relayed_matched": 10,
            "relayed_unmatched": 3,
        },
    }


def test_pool_counters_are_exported_only_while_a_pool_is_watched() -> None:
    metrics = Metrics()
    assert not any(k.startswith("idea24_smpp_bind_up") for k in samples(metrics))
    current = {"snap": snapshot(pushbacks=3)}
    metrics.pool.watch(lambda: current["snap"])
    got = samples(metrics)
    assert got['idea24_smpp_bind_up{bind="smsc-a"}'] == 1.0
    assert got['idea24_smpp_bind_up{bind="smsc-b"}'] == 0.0
    assert got['idea24_smpp_window_in_use{bind="smsc-a"}'] == 3.0
    assert got['idea24_smpp_throttled_total{bind="smsc-a"}'] == 3.0
    assert got['idea24_smpp_timeouts_total{bind="smsc-a"}'] == 2.0
    assert got['idea24_smpp_connects_total{bind="smsc-b"}'] == 5.0
    assert got['idea24_messages_out_total{bind="smsc-a",status="sent"}'] == 30.0
    assert got['idea24_messages_out_total{bind="smsc-b",status="sent"}'] == 7.0
    assert got['idea24_messages_out_total{bind="smsc-a",status="retried"}'] == 4.0
    assert got['idea24_messages_out_total{bind="smsc-a",status="failed"}'] == 1.0
    assert got["idea24_duplicate_mo_total"] == 6.0
    assert got['idea24_receipts_total{state="delivered"}'] == 9.0
    assert got['idea24_receipts_total{state="undeliverable"}'] == 2.0
    assert got['idea24_receipts_total{state="expired"}'] == 1.0
    assert got['idea24_message_outcomes_total{outcome="delivered"}'] == 20.0
    assert got['idea24_message_outcomes_total{outcome="failed"}'] == 2.0
    assert got["idea24_receipts_parked"] == 8.0
    relayed = "idea24_receipts_relayed_total"
    assert got[f'{relayed}{{direction="out",outcome="published"}}'] == 11.0
    assert got[f'{relayed}{{direction="out",outcome="dropped"}}'] == 1.0
    assert got[f'{relayed}{{direction="in",outcome="matched"}}'] == 10.0
    assert got[f'{relayed}{{direction="in",outcome="unmatched"}}'] == 3.0
    current["snap"] = snapshot(bound=False, pushbacks=9)  # read again at every scrape
    got = samples(metrics)
    assert got['idea24_smpp_bind_up{bind="smsc-a"}'] == 0.0
    assert got['idea24_smpp_throttled_total{bind="smsc-a"}'] == 9.0
    metrics.pool.watch(None)  # shut down: nothing stale is exported
    assert not any(k.startswith("idea24_smpp") for k in samples(metrics))


class _Runtime:
    def __init__(self, replies: list[Reply]) -> None:
        self.replies = replies

    async def turn(self, inbound: Any, deliver: Any = None) -> list[Reply]:
        if deliver is not None:
            await deliver(self.replies)
        return self.replies


class _Outbox:
    async def put(self, msisdn: str, texts: Any, meta: Any = None) -> list[str]:
        return ["1"]


async def test_turn_outcomes_tell_notices_from_dialog_replies() -> None:
    """``idea24_turns_total{outcome="error"}`` is what the operator guide alerts on: a turn the
    runtime answered with a notice instead of the dialog counts by the notice's kind."""
    metrics = Metrics()
    sms = InboundMessage("48600000001", "PAKIET", "sms")
    cases = [
        [Reply("Pakiet: 120 min")],
        [Reply("Przepraszamy, blad", notice="error")],
        [Reply("Chwileczke", notice="busy")],
        [Reply("Za duzo", notice="rate_limited")],
        [],
    ]
    for replies in cases:
        await Router(_Runtime(replies), _Outbox(), metrics)(sms)  # type: ignore[arg-type]
    got = samples(metrics)
    for outcome in ("replied", "error", "busy", "rate_limited", "silent"):
        assert got[f'idea24_turns_total{{channel="sms",outcome="{outcome}"}}'] == 1.0, outcome


async def test_outbox_depth_is_read_per_scrape_and_unknown_when_unreadable() -> None:
    from gateway.app import Components, _scrape_outbox
    from gateway.settings import Settings

    class Outbox:
        depth_now: int | Exception = 4

        async def depth(self) -> int:
            if isinstance(self.depth_now, Exception):
                raise self.depth_now
            return self.depth_now

    metrics = Metrics()
    outbox = Outbox()
    c = Components(Settings(), metrics)
    c.outbox = outbox  # type: ignore[assignment]
    refresh = _scrape_outbox(c)
    await refresh()
    assert samples(metrics)["idea24_outbox_depth"] == 4.0
    outbox.depth_now = ConnectionError("redis away")
    await refresh()
    assert math.isnan(samples(metrics)["idea24_outbox_depth"]), "a stale depth hides the outage"


def test_every_turn_series_exists_from_the_start() -> None:
    """An alert on ``rate(idea24_turns_total{outcome="error"}[5m])`` sees the very first error:
    the series is there at 0 before it (a series born at 1 has no increase to show)."""
    got = samples(Metrics())
    for channel in ("sms", "ussd"):
        assert got[f'idea24_messages_in_total{{channel="{channel}",status="ok"}}'] == 0.0
        assert got[f'idea24_turn_seconds_count{{channel="{channel}"}}'] == 0.0
        for outcome in ("replied", "silent", "error", "busy", "rate_limited"):
            assert got[f'idea24_turns_total{{channel="{channel}",outcome="{outcome}"}}'] == 0.0


def test_every_refusal_series_exists_from_the_start() -> None:
    """The alert rules watch scope="global" and reason="unauthorized" from their first one."""
    got = samples(Metrics())
    for reason in ("unauthorized", "loopback_only", "not_allowed"):
        assert got[f'idea24_ussd_http_refused_total{{reason="{reason}"}}'] == 0.0
    for scope in ("number", "global"):
        assert got[f'idea24_password_requests_refused_total{{scope="{scope}"}}'] == 0.0
    for origin in ("smpp", "http"):
        assert got[f'idea24_wrong_codes_total{{origin="{origin}"}}'] == 0.0
