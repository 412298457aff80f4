"""Inbound subscriber messages → one dialog turn → replies into the outbox.

The router is the only place where the SMPP world (``InboundMessage``, outbox meta) meets the
dialog world (``Inbound``, ``Reply``). It is awaited by the inbound path before the SMSC gets its
deliver_sm_resp, so a message acknowledged to the SMSC has had its turn and its replies queued.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from fsm.runtime import Inbound, Reply
from gateway.metrics import Metrics
from gateway.outbox.base import Outbox, reply_meta
from gateway.sms.events import InboundEvent, InboundMessage, ReceiptEvent
from gateway.ussd_idle import UssdIdle
from gateway.web.turns import TurnRunner, ussd_screen

log = logging.getLogger(__name__)


def to_inbound(message: InboundMessage) -> Inbound:
    return Inbound(
        msisdn=message.msisdn,
        channel=message.channel,
        text=message.text,
        ussd_op=message.ussd_op,
        session_id=message.session_id,
        message_id=message.message_id or None,
    )


class _ChannelMetrics(NamedTuple):
    """The labelled children one channel's turns touch (``labels()`` costs a lookup a call)."""

    messages_in: Any
    seconds: Any
    replied: Any
    silent: Any


class Router:
    def __init__(
        self,
        runtime: TurnRunner,
        outbox: Outbox,
        metrics: Metrics,
        on_ussd_queued: Callable[[str], None] | None = None,
        idle: UssdIdle | None = None,
    ) -> None:
        self.runtime = runtime
        self.outbox = outbox
        self.metrics = metrics
        #: ends a USSD session left idle with a text (None: the network's timeout ends it)
        self.idle = idle
        #: told the subscriber of every USSD menu as it is queued (the inbound side's redelivery
        #: check: an identical answer after it is the subscriber's, not the SMSC's copy)
        self._on_ussd_queued = on_ussd_queued
        self._channels: dict[str, _ChannelMetrics] = {}

    def _channel(self, channel: str) -> _ChannelMetrics:
        found = self._channels.get(channel)
        if found is None:
            m = self.metrics
            found = self._channels[channel] = _ChannelMetrics(
                m.messages_in.labels(channel, "ok"),
                m.turn_seconds.labels(channel),
                m.turns.labels(channel, "replied"),
                m.turns.labels(channel, "silent"),
            )
        return found

    async def __call__(self, event: InboundEvent) -> None:
        if isinstance(event, ReceiptEvent):
            return  # counted by the bind pool's DeliveryTracker, which sees every receipt
        await self.handle(event)

    async def handle(self, message: InboundMessage) -> None:
        started = time.perf_counter()
        counted = self._channel(message.channel)
        counted.messages_in.inc()
        if message.channel == "ussd" and self.idle is not None:
            self.idle.answered(message.msisdn)

        async def deliver(replies: list[Reply]) -> None:
            # Called by the runtime before it saves the turn's state: a reply queued durably
            # first can only be repeated by a crash, never lost.
            if not replies:
                return
            if message.channel == "ussd":
                text, end = ussd_screen(replies)
                # Told before the put: once the menu is stored, another process's sender may
                # send it and the subscriber's answer arrive here before the put returns. A put
                # that raises fails the turn, and a failed turn's copy is processed anyway.
                if self._on_ussd_queued is not None:
                    self._on_ussd_queued(message.msisdn)
                meta = reply_meta(message, end=end)
                await self.outbox.put(message.msisdn, text, meta)
                if self.idle is not None:
                    if end:
                        self.idle.answered(message.msisdn)
                    else:
                        self.idle.menu_sent(message.msisdn, meta)
            else:
                texts = [r.text for r in replies]
                await self.outbox.put(message.msisdn, texts, reply_meta(message))

        replies = await self.runtime.turn(to_inbound(message), deliver)
        counted.seconds.observe(time.perf_counter() - started)
        if not replies:
            counted.silent.inc()
        elif replies[0].notice is None:
            counted.replied.inc()
        else:  # the runtime answered instead of the dialog: error, busy, rate_limited
            self.metrics.turns.labels(message.channel, replies[0].notice).inc()
