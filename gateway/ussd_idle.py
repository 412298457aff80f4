"""Idle USSD sessions over SMPP end with a text from us, not with the network's empty END.

Theory of operation: when a menu (a screen that keeps the session open) is queued for a
subscriber, a timer is armed for the dialog's idle timeout; the subscriber's next USSD message
(or a final screen) disarms it. When it fires, the session's record has expired from the dialog
store unless the subscriber answered through another process meanwhile — so the record is
looked up first, and only a session that is really gone is ended: an END (``PSSR response``) to
the same session carrying "Sesja wygasła. Wybierz *100# ponownie." in the subscriber's language.
The network's own USSD timer is longer than the dialog's, so this END reaches the handset first.

The timers live in this process (one per subscriber with an open menu, at most ``limit``); a
process that dies loses its timers and those sessions end by the network's timeout, as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

#: Whether the subscriber's USSD dialog is still open (its record still in the store).
IsOpen = Callable[[str], Awaitable[bool]]
#: The session-expired text for a subscriber, in their language.
ExpiredText = Callable[[str], Awaitable[str]]
#: Queue one USSD reply: (msisdn, text, outbox meta).
Send = Callable[[str, str, Mapping[str, Any]], Awaitable[None]]


class UssdIdle:
    def __init__(
        self,
        timeout: float,
        is_open: IsOpen,
        expired_text: ExpiredText,
        send: Send,
        *,
        grace: float = 0.5,
        limit: int = 100_000,
    ) -> None:
        self.timeout = timeout
        self.is_open = is_open
        self.expired_text = expired_text
        self.send = send
        #: Past the record's TTL, so that an unanswered session's record is surely gone.
        self.grace = grace
        self.limit = limit
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: Sessions ended here with a text (for /metrics and tests).
        self.ended = 0

    def __len__(self) -> int:
        return len(self._timers)

    def answered(self, msisdn: str) -> None:
        """The subscriber spoke (or the session ended): no timeout for the menu they had."""
        timer = self._timers.pop(msisdn, None)
        if timer is not None:
            timer.cancel()

    def menu_sent(self, msisdn: str, meta: Mapping[str, Any]) -> None:
        """A menu went out with ``meta`` (its session): arm the idle timeout."""
        self.answered(msisdn)
        if len(self._timers) >= self.limit:
            log.warning("too many idle USSD timers; this session ends by the network's timeout")
            return
        end_meta = {**meta, "end": True}
        loop = asyncio.get_running_loop()
        self._timers[msisdn] = loop.call_later(
            self.timeout + self.grace, self._fire, msisdn, end_meta
        )

    def _fire(self, msisdn: str, meta: Mapping[str, Any]) -> None:
        self._timers.pop(msisdn, None)
        task = asyncio.get_running_loop().create_task(self._end(msisdn, meta))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("ending an idle USSD session failed", exc_info=task.exception())

    async def _end(self, msisdn: str, meta: Mapping[str, Any]) -> None:
        if await self.is_open(msisdn):
            return  # answered through another process: that one's timer runs now
        await self.send(msisdn, await self.expired_text(msisdn), meta)
        self.ended += 1
        log.info("idle USSD session ended", extra={"msisdn": msisdn})

    async def drain(self) -> None:
        """Wait for the endings already firing (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
