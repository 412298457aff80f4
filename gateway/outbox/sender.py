"""Outbox → SMSC: one sender loop per bind (the pool of binds is :mod:`gateway.binds`).

Each :class:`OutboxSender` takes from the shared outbox only what its own bind can send now
(free window, throttle not pausing), so a slow or throttled bind never holds work the others
could send, and the window stays full while there is work. An item's parts are built from its
text with the bind's profile (long-message mode, USSD TLVs) and the concatenation reference fixed
at ``put``, so a retry sends the same parts; parts the SMSC already accepted are not sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Any

from gateway.esme.profile import BindProfile
from gateway.esme.records import SubmitError
from gateway.esme.session import SmppSession, SubmitResult
from gateway.outbox.base import STORE_ERRORS, DeliveryTracker, Outbox, OutboxItem
from gateway.smpp.pdu import UssdOp
from gateway.sms import text
from gateway.supervise import Supervisor

log = logging.getLogger(__name__)

#: short_message holds at most 254 octets (SMPP 3.4 section 5.2.21).
MAX_SHORT_MESSAGE = 254


def build_parts(
    profile: BindProfile, item: OutboxItem, policy: text.Policy = "ucs2"
) -> list[dict[str, Any]]:
    """The submit_sm params of every part of ``item`` for this bind.

    Raises :class:`gateway.sms.text.TextEncodeError` for a text that cannot be sent (permanent).
    """
    meta = item.meta
    base: dict[str, Any] = {
        "source_addr_ton": profile.source_ton,
        "source_addr_npi": profile.source_npi,
        "source_addr": str(meta.get("source") or profile.source_addr),
        "dest_addr_ton": profile.dest_ton,
        "dest_addr_npi": profile.dest_npi,
        "destination_addr": item.msisdn,
        "protocol_id": 0,
        "priority_flag": 0,
        "registered_delivery": 0,
    }
    if meta.get("channel") == "ussd":
        # A USSD screen travels in one MAP message, under the same text policy as SMS (and as
        # the HTTP aggregator): UCS-2 carries about 80 characters, GSM-7 182. What needs UCS-2
        # and exceeds short_message's 254 octets goes in message_payload.
        data, coding = text.encode_ussd(item.text, policy)
        params = {
            **base,
            "service_type": "USSD",
            "esm_class": 0,
            "data_coding": coding,
            "short_message": data if len(data) <= MAX_SHORT_MESSAGE else b"",
            "ussd_service_op": UssdOp.PSSR_RESPONSE
            if meta.get("end", True)
            else UssdOp.USSR_REQUEST,
        }
        if len(data) > MAX_SHORT_MESSAGE:
            params["message_payload"] = data
        if meta.get("its_session_info") is not None:
            info = meta["its_session_info"]
            params["its_session_info"] = int(info, 16) if isinstance(info, str) else int(info)
        return [params]
    base["service_type"] = ""
    if profile.receipts:
        base["registered_delivery"] = 1  # an SMSC delivery receipt, success or failure
    out = []
    for part in text.encode_message(item.text, policy=policy, long=profile.long, ref=item.ref):  # type: ignore[arg-type]
        out.append(
            {
                **base,
                "esm_class": part.esm_class,
                "data_coding": part.data_coding,
                "short_message": part.short_message,
                **part.tlvs,
            }
        )
    return out


#: This process among all that ever had its pid (containers restart with the same one).
INCARNATION = secrets.token_hex(4)


def consumer_name(bind: str) -> str:
    """Who leases outbox items: host, process id, incarnation, bind."""
    return f"{socket.gethostname()}-{os.getpid()}-{INCARNATION}-{bind}"


def dead_local_consumer(consumer: str) -> bool:
    """True for a consumer of a process on this host that no longer runs — or of an earlier
    process that had our pid (another incarnation) — so its leases can be taken back at
    start-up instead of waited out. Other hosts' consumers are never judged."""
    prefix = f"{socket.gethostname()}-"
    if not consumer.startswith(prefix):
        return False
    pid_text, _, rest = consumer[len(prefix) :].partition("-")
    if not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return rest.partition("-")[0] != INCARNATION
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # a live process of another user
    return False


#: Seconds at most between tries of a reply whose parts were written and lost with the link (no
#: answer, the connection closed). The SMSC refused nothing: the link's own reconnect back-off
#: paces it. A reply cut by several drops in a row (an SMSC flapping for minutes) would otherwise
#: wait 2**attempts seconds after the link is back — minutes for the unlucky ones, and every later
#: reply of that subscriber waits behind it.
LINK_LOST_RETRY_CAP = 8.0


def retry_delay(attempts: int, base: float = 1.0, cap: float = 300.0) -> float:
    return float(min(cap, base * (2 ** max(0, attempts - 1))))


class OutboxSender:
    """Moves items from ``outbox`` through ``session``: done on OK, retry on temporary, fail."""

    def __init__(
        self,
        outbox: Outbox,
        session: SmppSession,
        *,
        tracker: DeliveryTracker | None = None,
        policy: text.Policy = "ucs2",
        consumer: str | None = None,
        retry_base: float = 1.0,
        retry_cap: float = 300.0,
        max_attempts: int = 50,
        poll: float = 0.5,
        heartbeat_every: float = 10.0,
        supervisor: Supervisor | None = None,
    ) -> None:
        self.outbox = outbox
        self.supervisor = supervisor or Supervisor()
        self.session = session
        self.tracker = tracker
        self.policy = policy
        self.consumer = consumer or consumer_name(session.name)
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.max_attempts = max_attempts
        self.poll = poll
        self.heartbeat_every = heartbeat_every
        self._in_flight = 0  # items taken and not yet finished (done, retried or failed)
        self._unanswered = 0  # of those, items the SMSC has not answered yet: the window's load
        self._freed = asyncio.Event()  # an item was answered: room to take more
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self.sent = 0
        self.retried = 0
        self.failed = 0
        #: parts whose late ESME_ROK came while their retry was held (a duplicate saved)
        self.late_saved = 0
        #: parts queued again although the SMSC may hold them (written, never answered): the
        #: only source of duplicate SMS; a late answer after this cannot recall them
        self.resent_unanswered = 0

    @property
    def busy(self) -> int:
        """Items being sent now."""
        return self._in_flight

    def _capacity(self) -> int:
        free = self.session.profile.window - self._unanswered
        if self.session.throttle.delay_for(1) > self.poll:
            free = min(free, 1)  # paused by the SMSC: hold as little as possible
        return max(0, free)

    async def run(self) -> None:
        beat = 0.0
        while not self._stopping.is_set():
            try:
                now = time.monotonic()
                if self._in_flight and now - beat >= self.heartbeat_every:
                    beat = now
                    await self.outbox.heartbeat(self.consumer)
                if not self.session.can_submit:
                    await self.session.tx.wait_bound(self.poll)
                    continue
                capacity = self._capacity()
                if capacity == 0:
                    await self._wait_slot()
                    continue
                items = await self.outbox.take(self.consumer, capacity, wait=self.poll)
            except STORE_ERRORS as exc:
                # The outbox store is down (Redis restarting, database cut): wait, never die.
                log.warning("outbox unavailable: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.poll)
                continue
            if items:
                self._spawn(items)

    async def _record(
        self, item: OutboxItem, what: str, call: Callable[[], Awaitable[None]]
    ) -> None:
        """Write an item's outcome, waiting out a store outage: a lost ``done`` would send the
        reply again, a lost ``retry`` would hold it until its lease ran out. Gives up only when
        the sender stops (the lease then brings the item back)."""
        delay = self.poll
        while True:
            try:
                await call()
                return
            except STORE_ERRORS as exc:
                if self._stopping.is_set():
                    log.error(
                        "outbox %s not recorded: %s", what, exc, extra={"msisdn": item.msisdn}
                    )
                    return
                log.warning(
                    "outbox %s waits for the store: %s", what, exc, extra={"msisdn": item.msisdn}
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                delay = min(delay * 2, 5.0)

    async def _wait_slot(self) -> None:
        self._freed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._freed.wait(), self.poll)

    def _spawn(self, items: list[OutboxItem]) -> None:
        """One task per batch taken: the parts of all of them go through the window together.
        Each item stops counting against the window as soon as its own answer is in, so the
        window is refilled without waiting for the slowest item of the batch."""
        self._in_flight += len(items)
        self._unanswered += len(items)
        task = asyncio.create_task(self.send_batch(items))
        self._tasks.add(task)

        def finished(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            self._in_flight -= len(items)

        task.add_done_callback(finished)
        self.supervisor.watch(task, "outbox-send", partial(self._crashed_batch, items))

    def _crashed_batch(self, items: list[OutboxItem], exc: BaseException) -> None:
        """A send task died: its items are released for a retry (an item it had finished is
        released again harmlessly), never left leased to nobody."""
        for item in items:
            task = asyncio.create_task(
                self._record(
                    item,
                    "retry",
                    partial(self.outbox.retry, item, self.retry_base, type(exc).__name__, {}),
                )
            )
            self.supervisor.watch(task, "outbox-release")

    def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.create_task(
                self.supervisor.forever("outbox-sender", self.run),
                name=f"outbox-sender {self.consumer}",
            )

    async def stop(self, grace: float = 5.0) -> None:
        """Stop taking work; let items being sent finish (their leases keep them safe)."""
        self._stopping.set()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=grace)
        for task in list(self._tasks):
            task.cancel()

    async def drain_once(self, within: float = 10.0, *, wait: float = 0.0) -> int:
        """Send everything eligible now, until nothing is left to take (tests: burst mode);
        the first look waits up to ``wait`` seconds for something to become eligible."""
        handled = 0
        async with asyncio.timeout(within):
            while True:
                capacity = max(1, self.session.profile.window - self._unanswered)
                items = await self.outbox.take(
                    self.consumer, capacity, wait if not handled else 0.0
                )
                if not items and not self._tasks:
                    return handled
                if items:
                    self._spawn(items)
                    handled += len(items)
                if self._tasks:
                    await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)

    async def send_batch(self, items: list[OutboxItem]) -> None:
        """One attempt at each item, their parts pipelined together; never raises for SMSC
        errors: each item ends done, released for a retry, or failed. The caller counted the
        items in ``_unanswered``; each is uncounted once, when answered."""
        counted = len(items)

        def answered(_index: int = 0, _result: object = None) -> None:
            nonlocal counted
            if counted:
                counted -= 1
                self._unanswered -= 1
                self._freed.set()

        try:
            work: list[tuple[OutboxItem, int, list[int]]] = []
            messages: list[list[dict[str, Any]]] = []
            for item in items:
                try:
                    parts = build_parts(self.session.profile, item, self.policy)
                except text.TextEncodeError as exc:
                    self.failed += 1
                    log.error(
                        "outbox item cannot be encoded: %s", exc, extra={"msisdn": item.msisdn}
                    )
                    answered()
                    reason = f"encode: {exc}"
                    await self._record(item, "fail", partial(self.outbox.fail, item, reason))
                    continue
                todo = [i for i in range(len(parts)) if i not in item.accepted]
                work.append((item, len(parts), todo))
                messages.append([parts[i] for i in todo])
            if not work:
                return
            late: dict[int, dict[int, str | None]] = {}  # message → part (of todo) → late id
            heard = asyncio.Event()

            def on_late(m: int, part: int, message_id: str | None) -> None:
                late.setdefault(m, {})[part] = message_id
                heard.set()

            results = await self.session.submit_many(messages, on_result=answered, on_late=on_late)
            held: list[int] = []
            for m, ((item, total, todo), result) in enumerate(zip(work, results, strict=True)):
                if isinstance(result, SubmitError) and result.temporary and result.late_possible:
                    held.append(m)  # settled after the grace: its late answers may come
                else:
                    await self._settle(item, total, todo, result)
            if held:
                waited = await self._await_late(held, results, late, heard)
                for m in held:
                    item, total, todo = work[m]
                    await self._settle(item, total, todo, results[m], late.get(m, {}), waited)
        finally:
            while counted:
                answered()

    async def _await_late(
        self,
        held: list[int],
        results: Sequence[SubmitResult | SubmitError],
        late: Mapping[int, Mapping[int, str | None]],
        heard: asyncio.Event,
    ) -> float:
        """Hold timed-out messages until each timed-out part was answered late or the link said
        no answer will come (its grace ran out, the connection closed); returns the seconds
        held. The deadline here only backs up the link's own report."""
        started = time.monotonic()
        deadline = started + self.session.late_grace + self.session.profile.response_timeout

        def open_parts() -> bool:
            for m in held:
                result = results[m]
                assert isinstance(result, SubmitError)
                if not result.late_possible <= late.get(m, {}).keys():
                    return True
            return False

        while open_parts() and not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            heard.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(heard.wait(), min(remaining, self.poll))
        return time.monotonic() - started

    async def _settle(
        self,
        item: OutboxItem,
        total: int,
        todo: list[int],
        result: SubmitResult | SubmitError,
        late: Mapping[int, str | None] | None = None,
        held: float = 0.0,
    ) -> None:
        accepted = dict(item.accepted)
        if isinstance(result, SubmitError):
            accepted.update({todo[i]: mid for i, mid in result.accepted.items()})
            saved = {todo[i]: mid for i, mid in (late or {}).items() if mid is not None}
            if saved:  # accepted after all: their answer came late, while the retry was held
                self.late_saved += len(saved)
                accepted.update(saved)
                if len(accepted) == total:
                    log.info("outbox late answers: sent", extra={"msisdn": item.msisdn})
                    await self._done(item, [accepted[i] for i in range(total)])
                    return
            never_sent = not result.attempted  # the link was down: not a try, no back-off
            if result.temporary and (item.attempts < self.max_attempts or never_sent):
                self.retried += 1
                self.resent_unanswered += sum(
                    1 for i in result.unanswered if todo[i] not in accepted
                )
                # A held item waited for late answers already: that wait counts toward its
                # back-off, so a genuinely lost submit is not delayed twice.
                lost_with_link = bool(result.unanswered - result.late_possible)
                cap = min(self.retry_cap, LINK_LOST_RETRY_CAP) if lost_with_link else self.retry_cap
                backoff = retry_delay(item.attempts, self.retry_base, cap)
                delay = self.retry_base if never_sent else max(0.0, backoff - held)
                log.info("outbox retry in %.1fs: %s", delay, result, extra={"msisdn": item.msisdn})
                error = str(result)
                await self._record(
                    item, "retry", lambda: self.outbox.retry(item, delay, error, accepted)
                )
            else:
                self.failed += 1
                log.error("outbox item failed: %s", result, extra={"msisdn": item.msisdn})
                await self._record(item, "fail", lambda: self.outbox.fail(item, str(result)))
            return
        accepted.update({todo[i]: mid for i, mid in enumerate(result.message_ids)})
        await self._done(item, [accepted[i] for i in range(total)])

    async def _done(self, item: OutboxItem, ids: list[str]) -> None:
        """Every part accepted: the item leaves the outbox and its receipts are awaited."""
        await self._record(item, "done", lambda: self.outbox.done(item, ids))
        self.sent += 1
        if self.tracker is not None and item.meta.get("channel") != "ussd":
            self.tracker.sent(item.id, item.msisdn, ids)
