"""What an SMPP link hands out: its errors, outcomes, counters and handler types."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from backend.errors import Idea24Error
from gateway.smpp.pdu import Pdu, Status

#: Called with each deliver_sm / data_sm; returns the command_status to answer with.
InboundHandler = Callable[[Pdu], Awaitable[int]]
#: Handles some inbound PDUs without waiting (a delivery receipt is parsed and matched in
#: memory): returns the command status to answer with, or None for "not this one" (it then goes
#: to the :data:`InboundHandler` as usual, in a task of its own).
AnswerNow = Callable[[Pdu], int | None]
LinkMode = Literal["trx", "tx", "rx"]


class SubmitError(Idea24Error):
    """A submit did not go through. ``temporary``: the same parts may be sent again later.

    ``accepted`` maps the index of each part the SMSC did accept to its message id, so a retry
    can send only the rest. ``attempted`` is False when nothing was written to the SMSC (the
    link was down before the send): a retry policy need not count that as a try.
    For a message of several parts (:meth:`gateway.esme.session.SmppSession.submit_many`):
    ``unanswered`` are the parts written whose answer never came (the SMSC may hold them: a
    retry may duplicate them) and ``late_possible``, of those, the parts that timed out on a
    live connection, whose late answer may still be reported through ``on_late``.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = Status.ESME_RUNKNOWNERR,
        temporary: bool,
        accepted: Mapping[int, str] | None = None,
        attempted: bool = True,
        unanswered: frozenset[int] = frozenset(),
        late_possible: frozenset[int] = frozenset(),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.temporary = temporary
        self.accepted: dict[int, str] = dict(accepted or {})
        self.attempted = attempted
        self.unanswered = unanswered
        self.late_possible = late_possible


class LinkDown(SubmitError):
    """The link is not bound (``attempted`` False: nothing was sent) or was lost while the
    request was outstanding."""

    def __init__(self, message: str = "link not bound", *, attempted: bool = False) -> None:
        super().__init__(
            message, status=Status.ESME_RUNKNOWNERR, temporary=True, attempted=attempted
        )


class ResponseTimeout(SubmitError):
    def __init__(self, command: str, timeout: float) -> None:
        super().__init__(
            f"no {command}_resp within {timeout:g}s", status=Status.ESME_RUNKNOWNERR, temporary=True
        )


#: What a submit_sm_resp says: (command_status, message_id).
Outcome = tuple[int, str]
#: Called with the index of a timed-out request and its late answer, or None when none will come.
LateHandler = Callable[[int, Outcome | None], None]


@dataclass(slots=True)
class LinkStats:
    """Plain counters; the app exports them to Prometheus."""

    connects: int = 0
    bind_failures: int = 0
    requests: int = 0
    timeouts: int = 0
    late_responses: int = 0
    late_accepted: int = 0  # late submit_sm_resp ESME_ROK handed to their caller
    nacks_sent: int = 0
    enquire_links_sent: int = 0
    enquire_links_answered: int = 0
    inbound: int = 0
    reads_paused: int = 0  # times reading stopped because inbound turns did not finish
    #: failed TLS connections by reason (:func:`gateway.tls.explain`)
    tls_failures: dict[str, int] = field(default_factory=dict)


def status_name(status: int) -> str:
    try:
        return Status(status).name
    except ValueError:
        return f"0x{status:08X}"
