"""What comes in from the network, as the gateway hands it on: a subscriber's whole message, or
a delivery receipt for something sent. Built by :mod:`gateway.esme.inbound`; read by the router,
the outbox's delivery tracker and the receipt relay."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from gateway.sms import receipts


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """What a subscriber typed or dialled, whole.

    ``session_id`` identifies a USSD session (the source plus its_session_info's session number,
    or the source alone); ``its_session_info`` is kept raw so the reply echoes it.
    """

    msisdn: str
    text: str
    channel: Literal["sms", "ussd"]
    ussd_op: int | None = None
    session_id: str | None = None
    message_id: str = ""
    destination: str = ""
    its_session_info: Any = None


@dataclass(frozen=True, slots=True)
class ReceiptEvent:
    """A delivery receipt for something we sent; ``message_id`` as the SMSC wrote it."""

    message_id: str
    state: str
    err: str | None
    msisdn: str
    receipt: receipts.Receipt


InboundEvent = InboundMessage | ReceiptEvent
InboundSink = Callable[[InboundEvent], Awaitable[None]]
