"""One turn of one subscriber: lock, load, trigger, save.

Theory of operation (aiogram's FSM, with its load-after-lock fix): a turn takes the subscriber's
lock first, then loads the dialog record, so two messages of one subscriber are handled one after
the other and the second sees what the first saved. The dialog decides which event the input is
and fires it on its shared machine through :class:`Turn` (the only way the state moves); handlers
call the backend and add replies; the record (state + data) is then written with the dialog's TTL
in one call, guarded by the lock token. An exception anywhere in the dialog gives the subscriber a
polite error and writes nothing, so the stored state is the one before the turn (or, where the
dialog asks for it, the session is dropped). Expiry is the store's TTL: a dialog that finds no
record starts over.

With ``deliver`` (the gateway passes its outbox put) a successful turn's replies are handed over
*before* its record is saved, still under the lock. A crash between the two then leaves the old
state with the reply queued: the SMSC offers the unacknowledged message again and the turn runs
once more (a confirmation finds its quote and answers again; money moves once, the backend's
changes are idempotent). Saved first, the same crash lost the reply for good: the state had moved
on ("nothing to confirm") and the reply was never queued.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import asyncpg
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeout
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from backend.errors import Idea24Error
from backend.protocol import Backend
from fsm import keys
from fsm.machine import DialogMachine
from fsm.record import DialogRecord
from fsm.store import DialogStore, LockHandle, LockLost, LockTimeout

log = logging.getLogger(__name__)

Channel = Literal["sms", "ussd"]
Notice = Literal["error", "busy", "rate_limited"]


@dataclass(frozen=True, slots=True)
class Inbound:
    msisdn: str
    channel: Channel
    text: str
    ussd_op: int | None = None
    session_id: str | None = None
    message_id: str | None = None
    #: For a channel that repeats the whole path with each answer (an HTTP USSD aggregator):
    #: the dial string it amounts to (``*100*2*1#``), replayed when the session is new here.
    dialled: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """``end=False`` only for USSD: a menu, the session stays open (op 2 / ``CON``).
    ``notice``: set when the runtime answered with a notice instead of the dialog (the turn
    failed, the lock was busy, the rate limit hit), so the gateway can count outcomes."""

    text: str
    end: bool = True
    notice: Notice | None = None


#: Where a turn's replies go before its record is saved (the gateway's outbox put).
Deliver = Callable[[list[Reply]], Awaitable[None]]


class TurnUnavailable(Idea24Error):
    """The turn could not run for a passing infrastructure failure (database connection lost,
    pool exhausted, Redis unreachable): nothing of it was saved. It is raised, not answered, so
    the gateway tells the SMSC "temporary error" and the message comes again."""


def is_transient(exc: BaseException) -> bool:
    """A failure of the stores' connections rather than of the dialog or the input."""
    connection = (
        PoolTimeout
        | RedisConnectionError
        | RedisTimeout
        | ConnectionError
        | asyncpg.InterfaceError
        | asyncpg.PostgresConnectionError
        | asyncpg.exceptions.InternalClientError
        | asyncpg.exceptions.OperatorInterventionError
    )
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        # No connection to be had (a primary shutting down, a standby not yet promoted, refused):
        # the driver's own error is the cause of the one SQLAlchemy wraps it in.
        cause: BaseException | None = exc.orig
        while cause is not None:
            if isinstance(cause, connection):
                return True
            cause = cause.__cause__
        return False
    return isinstance(exc, connection)


class RecordTooLarge(ValueError):
    """A dialog tried to keep more state than its budget (USSD sessions stay under 1 KiB)."""


class Turn:
    """The working copy of one subscriber's dialog during one turn."""

    def __init__(
        self,
        inbound: Inbound,
        machine: DialogMachine,
        state: str,
        data: dict[str, Any],
        backend: Backend,
        *,
        resumed: bool,
        found: bool = False,
    ) -> None:
        self.inbound = inbound
        self.backend = backend
        self.data = data
        self.replies: list[Reply] = []
        self.finished = False
        #: The loaded record continues (False: the dialog starts from its initial state).
        self.resumed = resumed
        #: A record was found at all (False after a timeout or on first contact).
        self.found = found
        self._machine = machine
        self._state = state

    @property
    def state(self) -> str:
        return self._state

    @property
    def msisdn(self) -> str:
        return self.inbound.msisdn

    async def fire(self, trigger: str) -> str:
        """Move the state by ``trigger`` on the shared machine; raises ``InvalidTransition``."""
        self._state = await self._machine.fire(self._state, trigger)
        return self._state

    def reply(self, text: str, *, end: bool = True) -> None:
        self.replies.append(Reply(text, end))

    def finish(self) -> None:
        """The dialog is over: its record is deleted instead of saved."""
        self.finished = True


class Dialog(Protocol):
    """What ``dialogs/`` provides per channel; the runtime owns locking and storage."""

    name: str
    machine: DialogMachine
    ttl: float
    max_record_bytes: int
    #: On a failed turn: True drops the session (USSD ends), False keeps the previous record.
    reset_on_error: bool

    def resumes(self, inbound: Inbound, record: DialogRecord) -> bool:
        """Whether ``record`` continues with this input (False: start from the initial state)."""

    async def handle(self, turn: Turn) -> None: ...

    def notice(self, inbound: Inbound, data: Mapping[str, Any], kind: Notice) -> Reply:
        """A polite text for a failure, a busy lock or the rate limit, in the right language."""


class Runtime:
    """Runs turns; never raises for anything a subscriber sends."""

    def __init__(
        self,
        store: DialogStore,
        dialogs: Mapping[str, Dialog],
        backend: Backend,
        *,
        rate_limit: int = 60,
        rate_window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.dialogs = dict(dialogs)
        self.backend = backend
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self._clock = clock

    def notice(self, inbound: Inbound, kind: Notice) -> Reply:
        """The channel's polite text for ``kind`` (for callers that cannot have the message
        offered again, such as the HTTP USSD aggregator, when a turn raised ``TurnUnavailable``)."""
        return _noticed(self.dialogs[inbound.channel], inbound, {}, kind)

    async def turn(self, inbound: Inbound, deliver: Deliver | None = None) -> list[Reply]:
        """The turn's replies. With ``deliver``, they are handed to it exactly once, before the
        record is saved (see the module docstring); if ``deliver`` raises, nothing is saved
        and the exception propagates (the SMSC offers the message again)."""
        if deliver is None:
            return await self._turn(inbound, None)
        handed: list[bool] = [False]

        async def once(replies: list[Reply]) -> None:
            handed[0] = True
            await deliver(replies)

        replies = await self._turn(inbound, once)
        if not handed[0]:  # a notice (busy, rate limited, error) or a turn that saved nothing
            await deliver(replies)
        return replies

    async def _turn(self, inbound: Inbound, deliver: Deliver | None) -> list[Reply]:
        dialog = self.dialogs.get(inbound.channel)
        if dialog is None:
            log.warning("no dialog for channel", extra={"channel": inbound.channel})
            return []
        extra = {"msisdn": inbound.msisdn, "channel": inbound.channel}
        try:
            # Nothing is awaited before the lock: turns of one subscriber queue in arrival order.
            # Lock, rate count and record come in one round trip on Redis (load after the lock).
            async with self.store.open_turn(
                inbound.msisdn, dialog.name, keys.rate(inbound.msisdn), self.rate_window
            ) as start:
                if start.undecodable:
                    log.warning("dropping an undecodable dialog record", extra=extra)
                if self.rate_limit and start.hits > self.rate_limit:
                    # One "too many messages" SMS per window, then silence until it passes:
                    # an auto-responder on the other side must not get an SMS per message
                    # (each one costs the operator). USSD is answered always: its session
                    # waits for a screen, and a screen costs nothing.
                    if start.hits > self.rate_limit + 1 and inbound.channel == "sms":
                        return []
                    log.info("turn rate limited", extra={**extra, "hits": start.hits})
                    return [_noticed(dialog, inbound, {}, "rate_limited")]
                return await self._locked_turn(dialog, inbound, start.guard, start.record, deliver)
        except LockTimeout:
            log.warning("turn lock busy", extra=extra)
            return [_noticed(dialog, inbound, {}, "busy")]
        except TurnUnavailable:
            raise
        except Exception as exc:
            if is_transient(exc):
                log.warning("turn unavailable: %s", type(exc).__name__, extra=extra)
                raise TurnUnavailable(str(exc)) from exc
            # The turn boundary: whatever broke (store, backend, dialog) the subscriber is answered.
            log.exception("turn failed outside the dialog", extra=extra)
            return [_noticed(dialog, inbound, {}, "error")]

    async def _locked_turn(
        self,
        dialog: Dialog,
        inbound: Inbound,
        guard: LockHandle,
        record: DialogRecord | None,
        deliver: Deliver | None,
    ) -> list[Reply]:
        extra = {"msisdn": inbound.msisdn, "channel": inbound.channel}
        resumed = record is not None and dialog.resumes(inbound, record)
        if resumed and record is not None and dialog.machine.has_state(record.state):
            state, data = record.state, dict(record.data)
        else:
            resumed = False
            state, data = dialog.machine.initial, {}
        turn = Turn(
            inbound,
            dialog.machine,
            state,
            data,
            self.backend,
            resumed=resumed,
            found=record is not None,
        )
        started = self._clock()
        try:
            await dialog.handle(turn)
            new = None if turn.finished else DialogRecord(dialog.name, turn.state, turn.data)
            if new is not None and len(new.encode()) > dialog.max_record_bytes:
                raise RecordTooLarge(f"{dialog.name} record of {len(new.encode())} bytes")
        except Exception as exc:
            if is_transient(exc):  # nothing saved: the SMSC is told to offer the message again
                raise TurnUnavailable(str(exc)) from exc
            # A failed turn must still answer; nothing of it is saved (see module docstring).
            log.exception("dialog turn failed", extra={**extra, "state": state})
            if dialog.reset_on_error and record is not None:
                await self.store.delete(inbound.msisdn, dialog.name, guard=guard, release=True)
            return [_noticed(dialog, inbound, data, "error")]
        if deliver is not None and turn.replies:
            await deliver(turn.replies)  # raises: nothing saved, the message comes again
        try:
            # The write also releases the lock (one round trip on Redis).
            if new is None:
                if record is not None:
                    await self.store.delete(inbound.msisdn, dialog.name, guard=guard, release=True)
            else:
                await self.store.save(inbound.msisdn, new, dialog.ttl, guard=guard, release=True)
        except LockLost:
            log.warning("turn outlived its lock; state not saved", extra=extra)
        log.debug(
            "turn",
            extra={**extra, "state": turn.state, "ms": round((self._clock() - started) * 1000, 1)},
        )
        return turn.replies


def _noticed(dialog: Dialog, inbound: Inbound, data: Mapping[str, Any], kind: Notice) -> Reply:
    """The dialog's notice text, marked with its kind (the gateway counts turn outcomes)."""
    reply = dialog.notice(inbound, data, kind)
    return Reply(reply.text, reply.end, kind)
