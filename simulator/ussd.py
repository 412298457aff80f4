"""USSD sessions as the network side sees them: one open dialogue per handset.

Theory of operation. A handset dials ``*100#``: the network opens a session and sends the ESME a
deliver_sm with ussd_service_op 1 (PSSR indication). The ESME answers with a submit_sm carrying
op 2 (USSR request: a menu, the session stays open) or op 17 (PSSR response: the final screen,
the session ends). While a session is open, what the handset types goes back as op 18 (USSR
confirm). ``its_session_info`` (octet 1: session number; octet 2: dialogue-unit number << 1 |
end bit) is set by the network on the first message and echoed from the ESME's last one after.
An idle session ends after ``timeout`` seconds, as a real network's would.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

from gateway.smpp.pdu import UssdOp


class UssdTimeout(TimeoutError):
    """The ESME did not answer the handset's USSD message in time."""


@dataclass(frozen=True, slots=True)
class UssdReply:
    """The network's answer to a dial or an answer: the screen and whether the session ended."""

    text: str
    end: bool
    op: int | None
    session: int

    def as_dict(self) -> dict[str, object]:
        return {"text": self.text, "end": self.end, "op": self.op, "session": self.session}


@dataclass(slots=True)
class UssdSession:
    msisdn: str
    number: int
    service_code: str
    last_activity: float
    its_session_info: int
    waiter: asyncio.Future[UssdReply] | None = field(default=None)


def is_dial_string(text: str) -> bool:
    """``*100#`` and ``*100*2#`` open a session; anything else answers an open one."""
    text = text.strip()
    return len(text) >= 2 and text[0] in "*#" and text.endswith("#")


def service_code(text: str) -> str:
    """``*100*2#`` → ``*100#``: the code the network routes on (the shortcut stays in the text)."""
    body = text.strip().strip("*#")
    return "*" + body.split("*", 1)[0] + "#"


def is_final(op: int) -> bool:
    """Only a USSR request keeps the dialogue open; a PSSR response or a notification ends it."""
    return op != UssdOp.USSR_REQUEST


class UssdSessions:
    """The open sessions, keyed by MSISDN; no I/O (the SMSC sends and times out)."""

    def __init__(self, timeout: float = 120.0) -> None:
        self.timeout = timeout
        self._sessions: dict[str, UssdSession] = {}
        self._numbers = itertools.cycle(range(1, 256))

    def get(self, msisdn: str) -> UssdSession | None:
        return self._sessions.get(msisdn)

    def open(self, msisdn: str, text: str, now: float) -> UssdSession:
        """A new dialogue (an old one for the same handset is abandoned, as a handset would)."""
        self.close(msisdn)
        number = next(self._numbers)
        session = UssdSession(msisdn, number, service_code(text), now, number << 8)
        self._sessions[msisdn] = session
        return session

    def close(self, msisdn: str, reason: BaseException | None = None) -> UssdSession | None:
        session = self._sessions.pop(msisdn, None)
        if session is not None and session.waiter is not None and not session.waiter.done():
            session.waiter.set_exception(reason or UssdTimeout("USSD session closed"))
        return session

    def expect_reply(self, session: UssdSession) -> asyncio.Future[UssdReply]:
        loop = asyncio.get_running_loop()
        if session.waiter is not None and not session.waiter.done():
            session.waiter.cancel()
        session.waiter = loop.create_future()
        # A session closed (cancelled by the handset, timed out) after its dial stopped waiting
        # fails a future nobody awaits any more: retrieve it, so asyncio logs no "Future
        # exception was never retrieved" for what is an ordinary end of a dialogue.
        session.waiter.add_done_callback(_retrieve)
        return session.waiter

    def network_reply(
        self, msisdn: str, text: str, op: int, its_session_info: int | None, now: float
    ) -> UssdReply:
        """The ESME spoke: resolve whoever waits, keep or end the session.

        A USSR request to a handset with no open session is network-initiated: it opens one.
        """
        session = self._sessions.get(msisdn)
        if session is None:
            session = UssdSession(msisdn, next(self._numbers), "", now, 0)
            if its_session_info is None:
                session.its_session_info = session.number << 8
            self._sessions[msisdn] = session
        if its_session_info is not None:
            session.its_session_info = its_session_info
        session.last_activity = now
        end = is_final(op)
        reply = UssdReply(text, end, op, session.number)
        if session.waiter is not None and not session.waiter.done():
            session.waiter.set_result(reply)
        if end:
            self._sessions.pop(msisdn, None)
        return reply

    def expired(self, now: float) -> list[UssdSession]:
        """Close and return the sessions idle past the timeout."""
        old = [s for s in self._sessions.values() if now - s.last_activity > self.timeout]
        for session in old:
            self.close(session.msisdn, UssdTimeout("USSD session timed out"))
        return old

    def count(self) -> int:
        return len(self._sessions)

    def close_all(self) -> None:
        for msisdn in list(self._sessions):
            self.close(msisdn)


def _retrieve(future: asyncio.Future[UssdReply]) -> None:
    if not future.cancelled():
        future.exception()
