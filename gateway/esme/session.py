"""One configured SMPP bind as the rest of the gateway sees it.

:class:`SmppSession` is one transceiver :class:`gateway.esme.link.SmppLink`, or a transmitter +
receiver pair (``profile.bind == "tx+rx"``), plus the :class:`Throttle` that outlives every
connection. ``submit_many(messages)`` sends the parts of several messages, pipelined through the
window, retrying ESME_RTHROTTLED / ESME_RMSGQFUL after slowing down, and gives each message the
SMSC's message ids or a :class:`SubmitError` saying whether a later retry may succeed. The
connection itself (reconnect, window, timeouts, enquire_link, matching responses) lives in
:mod:`gateway.esme.link`, its errors and counters in :mod:`gateway.esme.records`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.esme.link import SmppLink
from gateway.esme.profile import BindProfile
from gateway.esme.receiving import MAX_INBOUND
from gateway.esme.records import (
    AnswerNow,
    InboundHandler,
    LinkDown,
    LinkMode,
    Outcome,
    ResponseTimeout,
    SubmitError,
    status_name,
)
from gateway.esme.throttle import Backoff, Throttle
from gateway.smpp.errors import LocalProtocolError
from gateway.smpp.fast import submit_sm_template
from gateway.smpp.pdu import TEMPORARY_STATUSES, Status

__all__ = ["PUSHBACK_STATUSES", "SmppSession", "SubmitResult"]

log = logging.getLogger(__name__)


PUSHBACK_STATUSES = frozenset({Status.ESME_RTHROTTLED, Status.ESME_RMSGQFUL})


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """The SMSC's message id of each part, in part order."""

    message_ids: tuple[str, ...]


class SmppSession:
    """One configured bind (transceiver, or transmitter + receiver) with its throttle."""

    def __init__(
        self,
        profile: BindProfile,
        on_inbound: InboundHandler | None = None,
        *,
        throttle: Throttle | None = None,
        max_pushbacks: int = 8,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        connect_timeout: float = 5.0,
        stable_after: float = 10.0,
        late_grace: float | None = None,
        on_ussd_reply: Callable[[str], None] | None = None,
        answer_now: AnswerNow | None = None,
        on_connection_lost: Callable[[], None] | None = None,
        max_inbound: int = MAX_INBOUND,
    ) -> None:
        """``on_inbound`` gets every deliver_sm / data_sm (after ``answer_now``, when given,
        declined to answer it at once); ``on_connection_lost`` is told when a connection closes
        (a deliver_sm_resp written before may not have reached the SMSC)."""
        self.profile = profile
        self.name = profile.name
        #: told the destination of every USSD submit_sm the SMSC accepts
        self._on_ussd_reply = on_ussd_reply
        self.throttle = throttle or Throttle(profile.rate)
        self._max_pushbacks = max_pushbacks

        def link(mode: LinkMode, receives: bool) -> SmppLink:
            return SmppLink(
                profile,
                mode,
                on_inbound if receives else None,
                backoff=Backoff(backoff_base, backoff_cap),
                connect_timeout=connect_timeout,
                stable_after=stable_after,
                late_grace=late_grace,
                answer_now=answer_now if receives else None,
                on_connection_lost=on_connection_lost if receives else None,
                max_inbound=max_inbound,
            )

        if profile.bind == "tx+rx":
            self.tx = link("tx", False)
            self.rx: SmppLink | None = link("rx", True)
        else:
            self.tx = link("trx", True)
            self.rx = None
        self.submitted_parts = 0
        self.late_accepted = 0  # parts whose ESME_ROK came after the timeout
        self.pushbacks = 0

    @property
    def links(self) -> tuple[SmppLink, ...]:
        return (self.tx,) if self.rx is None else (self.tx, self.rx)

    @property
    def bound(self) -> bool:
        return all(link.bound for link in self.links)

    @property
    def late_grace(self) -> float:
        """How long a timed-out submit waits for its late answer on the link."""
        return self.tx.late_grace

    @property
    def can_submit(self) -> bool:
        return self.tx.bound

    async def start(self) -> None:
        for link in self.links:
            link.start()

    async def wait_bound(self, within: float | None = None) -> bool:
        results = await asyncio.gather(*(link.wait_bound(within) for link in self.links))
        return all(results)

    async def close(self, drain_timeout: float = 5.0) -> None:
        await asyncio.gather(*(link.close(drain_timeout) for link in self.links))

    async def __aenter__(self) -> SmppSession:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def submit_many(
        self,
        messages: Sequence[Sequence[Mapping[str, Any]]],
        *,
        on_result: Callable[[int, SubmitResult | SubmitError], None] | None = None,
        on_late: Callable[[int, int, str | None], None] | None = None,
    ) -> list[SubmitResult | SubmitError]:
        """Submit several messages (each a list of part params) as one pipelined batch.

        One outcome per message (returned, not raised).
        Pushback statuses are retried for the affected parts after the throttle's pause. Each
        part is encoded once (:func:`gateway.smpp.fast.submit_sm_template`), retries included.
        ``on_result(index, outcome)`` is called the moment a message's outcome is final (from
        the I/O callback: keep it short), so a sender can refill the window before the slowest
        message of the batch is answered.

        ``on_late(message, part, message_id)`` follows up a part that timed out (listed in its
        error's ``late_possible``): ``message_id`` when the SMSC's ESME_ROK came late (the part
        *was* accepted: do not send it again), None when no acceptance will come (a late
        refusal, the grace ran out or the connection closed). Called from the I/O callback.
        """
        flat: list[Mapping[str, Any]] = []
        owner: list[int] = []
        first: list[int] = []
        for m, parts in enumerate(messages):
            first.append(len(flat))
            flat.extend(parts)
            owner.extend([m] * len(parts))
        outcomes: list[str | SubmitError | None] = [None] * len(flat)
        left = [len(parts) for parts in messages]  # parts of each message not final yet
        results: list[SubmitResult | SubmitError | None] = [None] * len(messages)

        notify_ussd = self._on_ussd_reply is not None  # per answer, as it comes in

        def final(i: int, outcome: str | SubmitError) -> None:
            outcomes[i] = outcome
            m = owner[i]
            left[m] -= 1
            if left[m] == 0:
                result = results[m] = _message_result(outcomes, first[m], len(messages[m]))
                if on_result is not None:
                    on_result(m, result)

        def settle(i: int, answer: Outcome | SubmitError) -> bool:
            """Record a final answer; False for a pushback (the part goes again)."""
            if isinstance(answer, SubmitError):
                final(i, answer)
                return True
            status, message_id = answer
            if status == Status.ESME_ROK:
                self.submitted_parts += 1
                if notify_ussd:
                    self._note_ussd(flat[i])
                final(i, message_id)
                return True
            if status in PUSHBACK_STATUSES:
                return False
            final(i, _refused(status))
            return True

        def late(i: int, answer: Outcome | None) -> None:
            m = owner[i]
            if answer is None or answer[0] != Status.ESME_ROK:
                if on_late is not None:
                    on_late(m, i - first[m], None)
                return
            self.submitted_parts += 1
            self.late_accepted += 1
            if notify_ussd:
                self._note_ussd(flat[i])
            if on_late is not None:
                on_late(m, i - first[m], answer[1])

        for m, parts in enumerate(messages):
            if not parts:
                results[m] = SubmitResult(())
        templates: list[bytes] = [b""] * len(flat)
        todo: list[int] = []
        for i, params in enumerate(flat):
            try:
                templates[i] = submit_sm_template(params)
            except LocalProtocolError as exc:
                final(i, SubmitError(str(exc), status=exc.status, temporary=False))
                continue
            todo.append(i)
        throttle = self.throttle
        for _ in range(self._max_pushbacks + 1):
            if not todo:
                break
            if not throttle.unlimited:
                await throttle.acquire(len(todo))
            again: list[int] = []
            round_templates = [templates[i] for i in todo]
            if on_result is None and on_late is None and not notify_ussd:
                answers = await self.tx.submit_templates(round_templates)
                again = [i for i, a in zip(todo, answers, strict=True) if not settle(i, a)]
            else:

                def settled(
                    k: int,
                    answer: Outcome | SubmitError,
                    sent: list[int] = todo,
                    again: list[int] = again,
                ) -> None:
                    if not settle(sent[k], answer):
                        again.append(sent[k])

                def late_one(k: int, answer: Outcome | None, sent: list[int] = todo) -> None:
                    late(sent[k], answer)

                await self.tx.submit_templates(
                    round_templates, on_settled=settled, on_late=late_one
                )
                again.sort()  # parts go again in their order, not their answers'
            if len(again) < len(todo):
                throttle.success()
            if again:
                self.pushbacks += len(again)
                pause = throttle.pushback()
                log.info("smpp pushback: pausing %.2fs", pause, extra={"bind": self.name})
            todo = again
        for i in todo:
            final(
                i,
                SubmitError("SMSC kept throttling", status=Status.ESME_RTHROTTLED, temporary=True),
            )
        return [r if r is not None else LinkDown() for r in results]

    def _note_ussd(self, params: Mapping[str, Any]) -> None:
        """A USSD screen was accepted by the SMSC: the subscriber's next answer is a new turn.
        Told on acceptance, not on sending: a reply lost with the link (the SMSC then also
        redelivers the answer it never saw acknowledged) does not start a turn."""
        notify = self._on_ussd_reply
        if notify is not None and params.get("ussd_service_op") is not None:
            notify(str(params.get("destination_addr", "")))


def _refused(status: int) -> SubmitError:
    return SubmitError(
        f"submit_sm refused: {status_name(status)}",
        status=status,
        temporary=status in TEMPORARY_STATUSES,
    )


def _message_result(
    outcomes: Sequence[str | SubmitError | None], start: int, count: int
) -> SubmitResult | SubmitError:
    """One message's outcome from its parts': the ids, or the error that decides a retry."""
    if count == 1 and type(outcomes[start]) is str:  # the common case, cheaply
        return SubmitResult((outcomes[start],))  # type: ignore[arg-type]
    mine = outcomes[start : start + count]
    errors = [o for o in mine if isinstance(o, SubmitError)]
    if not errors:
        return SubmitResult(tuple(str(o) for o in mine))
    # The first permanent error wins (a retry cannot help), else the first temporary one.
    permanent = [e for e in errors if not e.temporary]
    decisive = permanent[0] if permanent else errors[0]
    accepted = {p: o for p, o in enumerate(mine) if isinstance(o, str)}
    timed_out = frozenset(p for p, o in enumerate(mine) if isinstance(o, ResponseTimeout))
    lost = frozenset(p for p, o in enumerate(mine) if isinstance(o, LinkDown) and o.attempted)
    return SubmitError(
        str(decisive),
        status=decisive.status,
        temporary=not permanent,
        accepted=accepted,
        attempted=bool(accepted) or any(e.attempted for e in errors),
        unanswered=timed_out | lost,
        late_possible=timed_out,
    )
