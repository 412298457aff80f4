"""The request side of an SMPP link: the window, the pending table and late answers.

Each request sent has an entry ``(batch, index, deadline)`` in ``_pending`` under its sequence
number; whoever settles it (a response, the sweeper, a lost connection) calls :meth:`_settle`.
A timed-out request is kept in ``_late`` for ``late_grace`` seconds (at most ``max_late``
entries) so a late answer can still be told to its caller. Built on by
:class:`gateway.esme.receiving.LinkReceiver` (the reading) and :class:`gateway.esme.link.SmppLink`
(the connection and the sending).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from gateway.esme.records import LinkDown, Outcome, SubmitError
from gateway.smpp.pdu import Pdu

log = logging.getLogger("gateway.esme.link")


class Batch:
    """Requests sent together for one caller, who awaits them all at once.

    Each request has an entry ``(batch, index, deadline)`` in the link's pending table; whoever
    settles it (a response, the sweeper, a lost connection) calls :meth:`RequestTable._settle`,
    which stores the outcome at ``index``, frees the window slot and wakes the caller after the
    last one: no future, timer or callback per PDU. ``raw`` batches carry pre-encoded submit_sm
    and get ``(status, message_id)`` tuples; the others get response :class:`Pdu` objects.
    """

    __slots__ = (
        "future",
        "on_late",
        "on_settled",
        "pdus",
        "raw",
        "results",
        "wait",
        "waiting",
        "windowed",
    )

    def __init__(
        self,
        size: int,
        wait: float,
        *,
        raw: bool,
        windowed: bool,
        pdus: Sequence[Pdu] = (),
        on_settled: Callable[[int, Any], None] | None = None,
        on_late: Callable[[int, Outcome | None], None] | None = None,
    ) -> None:
        self.results: list[Any] = [None] * size
        self.waiting = 0
        self.future: asyncio.Future[None] | None = None
        self.wait = wait
        self.raw = raw
        self.windowed = windowed
        self.pdus = pdus
        self.on_settled = on_settled
        self.on_late = on_late

    def command(self, index: int) -> str:
        return "submit_sm" if self.raw else self.pdus[index].command


Entry = tuple[Batch, int, float]


class RequestTable:
    """Requests of one link awaiting their answers, through a window of ``window`` slots."""

    def __init__(
        self, name: str, *, window: int, response_timeout: float, late_grace: float, max_late: int
    ) -> None:
        self.name = name
        self._response_timeout = response_timeout
        #: how long a timed-out request waits for its late answer
        self.late_grace = late_grace
        self._max_late = max(1, max_late)
        self._window_size = max(1, window)
        self._in_window = 0
        self._window_open = asyncio.Event()
        self._window_open.set()
        #: sequence → (batch, index, deadline); a sweeper settles the overdue ones.
        self._pending: dict[int, Entry] = {}
        #: sequence → (batch, index, expiry) of timed-out requests, oldest first
        self._late: OrderedDict[int, Entry] = OrderedDict()
        self._bound = asyncio.Event()
        self._closing = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def in_flight(self) -> int:
        """Requests holding a window slot now."""
        return self._in_window

    def _wait(self, response_timeout: float | None) -> float:
        return self._response_timeout if response_timeout is None else response_timeout

    async def _through_window(
        self,
        batch: Batch,
        items: Sequence[Any],
        send: Callable[[Batch, Sequence[Any], int, int], None],
    ) -> None:
        """Send ``items`` as the window makes room (``send(batch, items, start, count)`` for
        each run that fits) and wait until every one is settled."""
        total = len(items)
        index = 0
        try:
            while index < total:
                if self._closing.is_set() or not self._bound.is_set():
                    down = (
                        LinkDown("link is shutting down") if self._closing.is_set() else LinkDown()
                    )
                    for rest in range(index, total):
                        self._record(batch, rest, down)
                    break
                free = self._window_size - self._in_window
                if free > 0:  # room: no coroutine for the slots
                    room = min(total - index, free)
                    self._in_window += room
                else:
                    room = await self._acquire_slots(total - index)
                try:
                    send(batch, items, index, room)
                except SubmitError as exc:  # nothing of this run left: give its slots back
                    for _ in range(room):
                        self._release_slot()
                    for failed in range(index, index + room):
                        self._record(batch, failed, exc)
                index += room
            if batch.waiting:
                batch.future = asyncio.get_running_loop().create_future()
                await batch.future
        except asyncio.CancelledError:  # the caller gave up: forget its requests
            self._abandon(batch)
            raise

    async def _acquire_slots(self, want: int) -> int:
        """Wait for room in the window; take up to ``want`` slots (at least one)."""
        while self._in_window >= self._window_size:
            self._window_open.clear()
            await self._window_open.wait()
        room = min(want, self._window_size - self._in_window)
        self._in_window += room
        return room

    def _release_slot(self) -> None:
        self._in_window -= 1
        if self._in_window < self._window_size:
            self._window_open.set()

    def _settle(self, batch: Batch, index: int, outcome: Any) -> None:
        """One request of ``batch`` is over (its entry already left the pending table)."""
        batch.results[index] = outcome
        if batch.on_settled is not None:
            batch.on_settled(index, outcome)
        if batch.windowed:
            self._in_window -= 1
            if self._in_window < self._window_size:
                self._window_open.set()
        batch.waiting -= 1
        if batch.waiting == 0:
            future = batch.future
            if future is not None and not future.done():
                future.set_result(None)

    @staticmethod
    def _record(batch: Batch, index: int, outcome: Any) -> None:
        """An outcome for a request that never reached the pending table."""
        batch.results[index] = outcome
        if batch.on_settled is not None:
            batch.on_settled(index, outcome)

    def _abandon(self, batch: Batch) -> None:
        """Drop a cancelled caller's outstanding requests (their responses become late)."""
        for seq, entry in list(self._pending.items()):
            if entry[0] is batch:
                del self._pending[seq]
                self._remember_late(seq, entry)
                if batch.windowed:
                    self._release_slot()
        batch.on_late = None  # nobody is listening any more
        batch.waiting = 0
        if not self._pending:
            self._idle.set()

    def _remember_late(self, seq: int, entry: Entry) -> None:
        """Keep a timed-out request so its late answer can still be reported (bounded)."""
        batch, index, _ = entry
        self._late[seq] = (batch, index, time.monotonic() + self.late_grace)
        while len(self._late) > self._max_late:
            _, (old, old_index, _) = self._late.popitem(last=False)
            self._tell_late(old, old_index, None)

    def _expire_late(self, now: float) -> None:
        """Forget timed-out requests whose grace is over (entries are in expiry order)."""
        late = self._late
        while late:
            seq, (batch, index, expiry) = next(iter(late.items()))
            if expiry > now:
                return
            del late[seq]
            self._tell_late(batch, index, None)

    def _tell_late(self, batch: Batch, index: int, answer: Outcome | None) -> None:
        on_late = batch.on_late
        if on_late is not None:
            try:
                on_late(index, answer)
            except Exception:  # a caller's bug must not break the connection's I/O
                log.exception("smpp on_late callback failed", extra={"bind": self.name})
