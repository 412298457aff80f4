"""A dialog turn as the gateway's front ends see it — the router for SMPP
(:mod:`gateway.router`), the portal for HTTP (:mod:`gateway.web.portal`): what runs a turn, and
the USSD screen its replies make."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from fsm.runtime import Deliver, Inbound, Notice, Reply


class TurnRunner(Protocol):
    async def turn(self, inbound: Inbound, deliver: Deliver | None = None) -> list[Reply]: ...

    def notice(self, inbound: Inbound, kind: Notice) -> Reply: ...


def ussd_screen(replies: Sequence[Reply]) -> tuple[str, bool]:
    """USSD shows one screen per turn: join what the dialog said; the session ends if any did."""
    if not replies:
        return "", True
    return "\n".join(r.text for r in replies), any(r.end for r in replies)
