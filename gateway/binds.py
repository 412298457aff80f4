"""The pool of binds the app runs: every configured bind with its session and outbox sender.

One :class:`gateway.esme.inbound.InboundProcessor` serves every bind (de-duplication and
reassembly see them all); receipts go to the one delivery tracker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gateway.esme.inbound import InboundProcessor
from gateway.esme.link import SmppLink
from gateway.esme.session import SmppSession
from gateway.outbox.base import DeliveryTracker, Outbox
from gateway.outbox.sender import OutboxSender, dead_local_consumer
from gateway.settings import SmscProfile
from gateway.sms import text
from gateway.sms.events import InboundEvent, InboundSink, ReceiptEvent
from gateway.supervise import Supervisor

log = logging.getLogger(__name__)


class BindPool:
    """Every configured bind with its sender, sharing one outbox, inbound path and tracker.

    ``sink`` receives subscriber messages; receipts go to the tracker (and to ``sink`` too when
    ``receipts_to_sink``).
    """

    def __init__(
        self,
        profiles: Sequence[SmscProfile],
        outbox: Outbox,
        sink: InboundSink,
        *,
        tracker: DeliveryTracker | None = None,
        policy: text.Policy = "ucs2",
        session_options: Mapping[str, Any] | None = None,
        shared_outbox: bool = False,
        receipts_to_sink: bool = False,
        housekeeping_every: float = 30.0,
    ) -> None:
        self.outbox = outbox
        self._housekeeping_every = housekeeping_every
        self._housekeeper: asyncio.Task[None] | None = None
        self.tracker = tracker or DeliveryTracker()
        self._sink = sink
        self._receipts_to_sink = receipts_to_sink
        # Shared outbox: our replies may leave through another process (USSD dedup needs it).
        self.inbound = InboundProcessor(
            self._route,
            private_outbox=not shared_outbox,
            receipts_now=None if receipts_to_sink else self.tracker.receipt,
        )
        self.sessions = [
            SmppSession(
                p,
                self.inbound,
                on_ussd_reply=self.inbound.replied,
                answer_now=self.inbound.handle_now,
                on_connection_lost=self.inbound.connection_lost,
                **dict(session_options or {}),
            )
            for p in profiles
        ]
        #: restarts the senders' loops and housekeeping, watches send tasks (one per pool)
        self.supervisor = Supervisor()
        self.senders = [
            OutboxSender(outbox, s, tracker=self.tracker, policy=policy, supervisor=self.supervisor)
            for s in self.sessions
        ]

    async def _route(self, event: InboundEvent) -> None:
        if isinstance(event, ReceiptEvent):
            self.tracker.receipt(event)
            if not self._receipts_to_sink:
                return
        await self._sink(event)

    async def start(self) -> None:
        for session in self.sessions:
            await session.start()
        if self.senders:
            # A restart after a crash: what the dead process had leased goes out now, not
            # after its leases expire (a shared store also holds other processes' leases).
            recovered = await self.outbox.recover(self.senders[0].consumer, dead_local_consumer)
            if recovered:
                log.warning("outbox items of a dead process taken back: %d", recovered)
        for sender in self.senders:
            sender.start()
        self._housekeeper = asyncio.create_task(
            self.supervisor.forever("reassembly-housekeeping", self._housekeeping)
        )

    async def _housekeeping(self) -> None:
        """Give up on long MO whose parts never all came (the reassembler is sans-I/O)."""
        while True:
            await asyncio.sleep(self._housekeeping_every)
            for lost in self.inbound.expire():
                log.warning(
                    "long MO incomplete (%s), dropped",
                    lost.reason,
                    extra={"msisdn": lost.source, "missing": list(lost.missing)},
                )

    async def close(self, grace: float = 5.0) -> None:
        if self._housekeeper is not None:
            self._housekeeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeper
        await asyncio.gather(*(s.stop(grace) for s in self.senders))
        await asyncio.gather(*(s.close(grace) for s in self.sessions))

    def snapshot(self) -> dict[str, Any]:
        """Plain numbers for /healthz and /metrics: per bind, inbound, receipts."""
        binds = {}
        for session, sender in zip(self.sessions, self.senders, strict=True):
            binds[session.name] = {
                "bound": session.bound,
                "window": session.profile.window,
                "in_flight": session.tx.in_flight,
                "submitted_parts": session.submitted_parts,
                "pushbacks": session.pushbacks,
                "effective_rate": session.throttle.effective_rate,
                "timeouts": sum(link.stats.timeouts for link in session.links),
                "connects": sum(link.stats.connects for link in session.links),
                "tls_failures": _tls_failures(session.links),
                "sent": sender.sent,
                "retried": sender.retried,
                "failed": sender.failed,
                "late_responses": sum(link.stats.late_responses for link in session.links),
                "late_saved": sender.late_saved,
                "resent_unanswered": sender.resent_unanswered,
            }
        t, i = self.tracker, self.inbound
        return {
            "binds": binds,
            "inbound": {
                "messages": i.messages,
                "receipts": i.receipts,
                "duplicates": i.duplicates,
                "parts_waiting": i.parts_waiting,
                "evictions": i.evictions,
            },
            "task_crashes": dict(self.supervisor.crashes),
            "delivery": {
                "submitted": t.submitted,
                "delivered": t.delivered,
                "failed": t.failed,
                "receipts": t.receipts,
                "receipt_states": dict(t.receipt_states),
                "early": t.early,
                "parked": t.parked,
                # Receipts relayed between processes (gateway/outbox/receipt_relay.py; Redis only).
                "relayed_out": t.relayed_out,
                "relay_dropped": t.relay_dropped,
                "relayed_matched": t.relayed_matched,
                "relayed_unmatched": t.relayed_unmatched,
            },
        }

    async def __aenter__(self) -> BindPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _tls_failures(links: Iterable[SmppLink]) -> dict[str, int]:
    """Failed TLS connections of a bind's links, by reason."""
    total: dict[str, int] = {}
    for link in links:
        for reason, count in link.stats.tls_failures.items():
            total[reason] = total.get(reason, 0) + count
    return total
