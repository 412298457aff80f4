"""The simulated SMSC: accounts, routing to receiving sessions, submits, receipts, MO and USSD.

Theory of operation. :class:`Smsc` owns everything shared between connections: the accounts,
the bound sessions, the handset store and the USSD sessions. Each TCP connection is a
:class:`~simulator.session.SmscSession` that calls back here for decisions. Messages towards an
ESME (MO, USSD from handsets, delivery receipts) are :class:`Delivery` records routed round-robin
to a session that can receive (receipts: one of the submitting account's); with none bound they
wait in ``undelivered`` until one binds, as a store-and-forward SMSC would.

Submits are the hot path (tens of thousands a second): a receipt is packed into wire bytes once
(its text written by :func:`gateway.sms.receipts.format_receipt`, the definition the gateway's
parser reads) and queued; the queue is routed once per batch of received PDUs
(:meth:`Smsc.drain_receipts`), so a batch of receipts leaves with the responses in one write.
A single-part submit is stored as raw octets and decoded when read. A maintenance task
ticks a few times a second: enquire_link on quiet links, closing silent ones, taking back
unanswered deliver_sm, ending idle USSD sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import ssl
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from gateway.smpp.pdu import (
    ESM_UDHI,
    REGISTERED_DELIVERY_RECEIPT_MASK,
    Pdu,
    Status,
)
from gateway.sms.decoding import Body, decode_body
from simulator.bindguard import BindGuard, check_credentials, in_address_range
from simulator.delivery import Delivery
from simulator.faults import Faults, SimulatorHandler
from simulator.mo import handset_parts
from simulator.mt import MtAssembler, body_codec, split_part
from simulator.receipts import FinalStates, receipt_delivery
from simulator.session import SmscSession
from simulator.store import HandsetMessage, HandsetStore
from simulator.trace import DEFAULT_SIZE as DEFAULT_TRACE_SIZE
from simulator.trace import PduTrace
from simulator.ussd import UssdReply, UssdSessions
from simulator.ussd_network import UssdNetwork

log = logging.getLogger(__name__)
Split = tuple[tuple[str, int, int, int] | None, Body]

DEFAULT_ACCOUNTS: Mapping[str, str] = {"idea24": "idea24"}
#: Deliveries kept while no receiving session is bound; the oldest are dropped beyond this.
UNDELIVERED_LIMIT = 100_000
MAX_ATTEMPTS = 5


class MoRefused(RuntimeError):
    """An ESME answered an MO part with an error status (after retries for temporary ones)."""


class Smsc:
    def __init__(
        self,
        accounts: Mapping[str, str] | None = None,
        *,
        handler: SimulatorHandler | None = None,
        faults: Faults | None = None,
        system_id: str = "IDEA24SIM",
        window: int = 256,
        enquire_link_interval: float = 30.0,
        inactivity_timeout: float = 90.0,
        response_timeout: float = 30.0,
        # The network's USSD timer: longer than the server's idle timeout (120 s), as a real
        # network's is, so an idle session is ended by the server with a text.
        ussd_timeout: float = 180.0,
        bind_guard: BindGuard | None = None,
        trace_size: int = DEFAULT_TRACE_SIZE,
    ) -> None:
        self.accounts = dict(accounts or DEFAULT_ACCOUNTS)
        self.bind_guard = bind_guard if bind_guard is not None else BindGuard()
        self.faults = faults or (handler.faults if handler else Faults())
        self.handler = handler or SimulatorHandler(self.faults)
        self.system_id = system_id
        self.window = window
        self.enquire_link_interval = enquire_link_interval
        self.inactivity_timeout = inactivity_timeout
        self.response_timeout = response_timeout
        self.store = HandsetStore()
        self.trace = PduTrace(trace_size)
        self.ussd = UssdSessions(ussd_timeout)
        self.ussd_network = UssdNetwork(self.ussd, self.store, self.route, self.now)
        self.sessions: list[SmscSession] = []
        self.undelivered: deque[Delivery] = deque(maxlen=UNDELIVERED_LIMIT)
        self.submitted = 0
        self._assembler = MtAssembler()
        self._ids = itertools.count(secrets.randbelow(1 << 24) << 16)
        self._refs = itertools.count(secrets.randbelow(256))
        self._rr = 0
        self._final_states = FinalStates()
        self._queued: list[Delivery] = []
        self._drain_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._servers: list[asyncio.Server] = []
        self._ticker: asyncio.Task[None] | None = None
        self._all_gone = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    def now(self) -> float:
        loop = self._loop or asyncio.get_running_loop()
        return loop.time()

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, *, tls: ssl.SSLContext | None = None
    ) -> tuple[str, int]:
        """Listen (over TLS with a server context ``tls``) and start ticking; the address."""
        self._loop = asyncio.get_running_loop()
        address = await self.listen(host, port, tls=tls)
        self._ticker = asyncio.create_task(self._tick_forever())
        return address

    async def listen(
        self, host: str = "127.0.0.1", port: int = 0, *, tls: ssl.SSLContext | None = None
    ) -> tuple[str, int]:
        """One more listener (SMPP over TLS beside the plain one, say): the same accounts,
        sessions and behaviour. A ``tls`` context requiring client certificates makes it
        mutual TLS; a client whose handshake fails never reaches a session."""
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SmscSession(self),
            host,
            port,
            ssl=tls,
            ssl_handshake_timeout=10.0 if tls is not None else None,
        )
        self._servers.append(server)
        sockname = server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    async def stop(self, grace: float = 1.0) -> None:
        """Unbind every session, give them ``grace`` seconds to answer, then close."""
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for session in list(self.sessions):
            session.unbind()
        if self.sessions:
            self._all_gone.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self._all_gone.wait()
        for session in list(self.sessions):
            session.close(abort=True)
        self.ussd.close_all()
        self.store.close()
        self.trace.close()
        for server in servers:
            await server.wait_closed()

    def drop_all(self) -> int:
        """Fault: cut every connection at once (as a crashing SMSC would); returns how many."""
        sessions = [s for s in self.sessions if not s.closed]
        for session in sessions:
            session.close(abort=True)
        return len(sessions)

    def attach(self, session: SmscSession) -> None:
        self.sessions.append(session)

    def detach(self, session: SmscSession, redeliver: list[Delivery]) -> None:
        with contextlib.suppress(ValueError):
            self.sessions.remove(session)
        if not self.sessions:
            self._all_gone.set()
        for delivery in redeliver:
            self.route(delivery)

    # -- binds -------------------------------------------------------------------------------

    def check_bind(self, pdu: Pdu, peer: str = "") -> int:
        """The bind's status: credentials first (wrong ones are counted per peer address and
        logged without the password), then the fault hooks; a blocked address gets
        ESME_RBINDFAIL without its credentials being looked at."""
        now = self.now()
        refused = check_credentials(self.bind_guard, self.accounts, pdu, peer, now)
        if refused is not None:
            return refused
        return self.handler.bind_status(str(pdu.get("system_id", "")), pdu, now)

    def bound(self, session: SmscSession) -> None:
        if not session.can_receive or not self.undelivered:
            return
        waiting = list(self.undelivered)
        self.undelivered.clear()
        for delivery in waiting:
            self.route(delivery)

    # -- routing towards ESMEs ---------------------------------------------------------------

    def receivers(self, system_id: str | None, destination: str) -> list[SmscSession]:
        out = []
        for s in self.sessions:
            if not s.can_receive or (system_id is not None and s.system_id != system_id):
                continue
            if (
                system_id is None
                and s.address_range
                and not in_address_range(s.address_range, destination)
            ):
                continue
            out.append(s)
        return out

    def route(self, delivery: Delivery) -> None:
        candidates = self.receivers(delivery.system_id, delivery.destination_addr())
        if not candidates:
            self.undelivered.append(delivery)
            return
        self._rr += 1
        candidates[self._rr % len(candidates)].enqueue(delivery)

    def retry(self, delivery: Delivery) -> None:
        """A temporary deliver_sm_resp error: try again shortly (up to ``MAX_ATTEMPTS``)."""
        delivery.attempts += 1
        if delivery.attempts >= MAX_ATTEMPTS:
            if delivery.done is not None:
                delivery.done(int(Status.ESME_RDELIVERYFAILURE))
            return
        loop = self._loop or asyncio.get_running_loop()
        loop.call_later(0.1 * delivery.attempts, self.route, delivery)

    # -- submits from ESMEs -----------------------------------------------------------------------

    def next_message_id(self) -> str:
        return format(next(self._ids), "x")

    def submit(self, session: SmscSession, pdu: Pdu) -> None:
        """Answer a submit_sm / data_sm; record it for the handset; queue its receipt."""
        assert session.system_id is not None
        now = self.now()
        params = pdu.params
        status = self.handler.submit_status(session.system_id, pdu, now)
        if status == 0 and not params.get("destination_addr"):
            status = int(Status.ESME_RINVDSTADR)
        if status:
            session.respond(pdu, pdu.response(status, message_id=""))
            return
        self.submitted += 1
        message_id = self.next_message_id()
        plain = (
            not params.get("esm_class", 0) & ESM_UDHI
            and "message_payload" not in params
            and "sar_msg_ref_num" not in params
            and "ussd_service_op" not in params
        )
        if plain:  # one part, no headers: nothing to split or reassemble
            split: Split | None = None
            data = params.get("short_message") or b""
            body = Body(None, body_codec(data, params.get("data_coding", 0)), data)
        else:
            split = split_part(params)
            body = split[1]
        excerpt = decode_body(body.data[:40], body.codec)  # the receipt shows 20 characters
        receipt = self._receipt_for(session.system_id, pdu, message_id, excerpt)
        if receipt is not None and self.faults.receipt_first:
            self.route(receipt)
            receipt = None
        session.accept_submit(pdu, message_id)
        if split is None:
            self.store.add_raw_sms(
                params.get("destination_addr", ""),
                params.get("source_addr", ""),
                body.data,
                body.codec,
                params.get("data_coding", 0),
                message_id,
                time.time(),
            )
        else:
            self._record_mt(pdu, message_id, now, split)
        if receipt is not None:
            delay = self.handler.receipt_delay(pdu)
            if delay > 0:
                asyncio.get_running_loop().call_later(delay, self.route, receipt)
            else:
                self.queue_receipt(receipt)

    def _receipt_for(
        self, system_id: str, pdu: Pdu, message_id: str, excerpt: str
    ) -> Delivery | None:
        wanted = pdu.params.get("registered_delivery", 0) & REGISTERED_DELIVERY_RECEIPT_MASK
        if not wanted:
            return None
        state = self.handler.receipt_state(pdu)
        self._final_states.remember(message_id, state)
        if wanted == 2 and state == "DELIVRD":  # receipt on failure only
            return None
        return receipt_delivery(system_id, pdu.params, message_id, state, excerpt)

    def query(self, pdu: Pdu) -> Pdu:
        return self._final_states.query(pdu)

    def queue_receipt(self, receipt: Delivery) -> None:
        """Route ``receipt`` with the rest of this batch (see :meth:`drain_receipts`)."""
        self._queued.append(receipt)
        if not self._drain_scheduled:
            self._drain_scheduled = True
            (self._loop or asyncio.get_running_loop()).call_soon(self.drain_receipts)

    def drain_receipts(self) -> None:
        """Route the queued receipts: receivers looked up once per account, not per receipt."""
        self._drain_scheduled = False
        queued = self._queued
        if not queued:
            return
        self._queued = []
        by_account: dict[str | None, list[Delivery]] = {}
        for receipt in queued:
            by_account.setdefault(receipt.system_id, []).append(receipt)
        for system_id, receipts in by_account.items():
            candidates = self.receivers(system_id, "")
            if not candidates:
                self.undelivered.extend(receipts)
                continue
            if len(candidates) == 1:
                candidates[0].enqueue_many(receipts)
                continue
            n = len(candidates)
            for i, receipt in enumerate(receipts, self._rr + 1):
                candidates[i % n].pending.append(receipt)
            self._rr += len(receipts)
            for session in candidates:
                session.pump()

    def _record_mt(self, pdu: Pdu, message_id: str, now: float, split: Split) -> None:
        op = pdu.get("ussd_service_op")
        if op is not None:
            self.ussd_network.from_esme(pdu, int(op), message_id, now, split[1])
            return
        logical = self._assembler.add(pdu.params, message_id, now, split)
        if logical is None:
            return
        self.store.add(
            msisdn=logical.destination,
            peer=logical.source,
            direction="mt",
            kind="sms",
            text=logical.text,
            parts=logical.parts,
            data_coding=logical.data_coding,
            message_ids=logical.message_ids,
            concatenation=logical.concatenation,
        )

    # -- MO ----------------------------------------------------------------------------------

    async def inject_mo(
        self,
        source: str,
        destination: str,
        text: str,
        data_coding: int | None = None,
        *,
        long: str = "udh",
        ack_timeout: float | None = None,
    ) -> HandsetMessage:
        """A handset sends an SMS: split like a handset (UDH by default), route each part.

        With ``ack_timeout`` wait until an ESME acknowledged every part (TimeoutError if not).
        """
        parts = handset_parts(text, data_coding, long=long, ref=next(self._refs))
        copies = self.handler.mo_copies(source, text)
        loop = asyncio.get_running_loop()
        acks: list[asyncio.Future[int]] = []
        for part in parts:
            params: dict[str, Any] = {
                "service_type": "",
                "source_addr_ton": 1,
                "source_addr_npi": 1,
                "source_addr": source,
                "dest_addr_ton": 0,
                "dest_addr_npi": 1,
                "destination_addr": destination,
                "esm_class": part.esm_class,
                "data_coding": part.data_coding,
                "short_message": part.short_message,
                **part.tlvs,
            }
            for _ in range(copies):
                ack = loop.create_future()
                acks.append(ack)
                self.route(Delivery(Pdu("deliver_sm", params=params), None, done=_resolver(ack)))
        message = self.store.add(
            msisdn=source,
            peer=destination,
            direction="mo",
            kind="sms",
            text=text,
            parts=len(parts),
            data_coding=parts[0].data_coding,
            concatenation=(long if len(parts) > 1 or long == "payload" else None),
        )
        if ack_timeout is not None:
            async with asyncio.timeout(ack_timeout):
                statuses = await asyncio.gather(*acks)
            if any(statuses):
                raise MoRefused(f"an ESME refused the MO: statuses {statuses}")
        return message

    async def dial(self, msisdn: str, text: str, wait: float = 10.0) -> UssdReply:
        """:meth:`simulator.ussd_network.UssdNetwork.dial`."""
        return await self.ussd_network.dial(msisdn, text, wait)

    def cancel_ussd(self, msisdn: str) -> bool:
        """The handset pressed Cancel: the session ends on the handset's side."""
        return self.ussd_network.cancel(msisdn)

    # -- reading -----------------------------------------------------------------------------

    def messages(self, msisdn: str | None = None) -> list[HandsetMessage]:
        return self.store.messages(msisdn)

    async def wait_messages(
        self, msisdn: str, count: int = 1, *, direction: str = "mt", wait: float = 5.0
    ) -> list[HandsetMessage]:
        """Wait until ``msisdn`` has at least ``count`` messages in ``direction``; returns them."""
        queue = self.store.subscribe(receipts=False)  # a receipt adds no message
        try:
            async with asyncio.timeout(wait):
                while True:
                    found = [m for m in self.store.messages(msisdn) if m.direction == direction]
                    if len(found) >= count:
                        return found
                    if await queue.get() is None:
                        queue = self.store.subscribe(receipts=False)
        finally:
            self.store.unsubscribe(queue)

    def describe(self) -> dict[str, Any]:
        return {
            "system_id": self.system_id,
            "sessions": [s.describe() for s in self.sessions],
            "undelivered": len(self.undelivered),
            "submitted": self.submitted,
            "ussd_sessions": self.ussd.count(),
        }

    # -- maintenance -------------------------------------------------------------------------

    @property
    def tick_interval(self) -> float:
        shortest = min(
            self.enquire_link_interval,
            self.inactivity_timeout,
            self.response_timeout,
            self.ussd.timeout,
        )
        return max(0.02, min(1.0, shortest / 4))

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.tick_interval)
            try:
                self.tick(self.now())
            except Exception:  # the ticker must survive a bug in one session
                log.exception("simulator maintenance failed")

    def tick(self, now: float) -> None:
        """One maintenance pass; public so tests can run it without waiting."""
        for session in list(self.sessions):
            quiet = now - session.last_rx
            if quiet > self.inactivity_timeout:
                log.info("closing silent session", extra={"peer": session.peer})
                session.close()
                continue
            if quiet > self.enquire_link_interval and not session.enquire_sent:
                session.enquire_link(now)
            for delivery in session.expire_outstanding(now, self.response_timeout):
                self.retry(delivery)
        self.ussd_network.expire(now)
        self._assembler.expire(now)


def _resolver(future: asyncio.Future[int]) -> Callable[[int], None]:
    def done(status: int) -> None:
        if not future.done():
            future.set_result(status)

    return done
