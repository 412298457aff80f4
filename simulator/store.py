"""What each handset saw: logical messages (reassembled), their parts and receipt states.

The store is the simulator's memory of traffic, read by tests (``sim.messages(msisdn)``), the
HTTP API and the live event stream (SSE). It is bounded per handset so a load test does not grow
it without end, and it keeps no state outside the instance.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from typing import Any

#: Messages kept per handset; older ones are forgotten first.
DEFAULT_KEEP = 200
#: Events an SSE subscriber may lag behind before it is cut off (it reconnects and re-lists).
SUBSCRIBER_BACKLOG = 1000


@dataclass(frozen=True, slots=True)
class HandsetMessage:
    """One logical message to or from a handset.

    ``direction`` is ``"mt"`` (network → handset: what reached it) or ``"mo"`` (handset →
    network). ``kind`` is ``"sms"`` or ``"ussd"``; ``ussd_op`` the ussd_service_op it carried;
    ``message_ids`` one SMSC id per part; ``receipt`` the last receipt state sent for it.
    """

    id: int
    msisdn: str
    peer: str
    direction: str
    kind: str
    text: str
    parts: int
    data_coding: int
    ussd_op: int | None = None
    end: bool | None = None
    message_ids: tuple[str, ...] = ()
    receipt: str | None = None
    concatenation: str | None = None
    at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["message_ids"] = list(self.message_ids)
        return out


class HandsetStore:
    """Bounded per-handset history plus fan-out of every change to live subscribers."""

    def __init__(self, keep: int = DEFAULT_KEEP) -> None:
        self._keep = keep
        self._history: dict[str, deque[int]] = {}
        self._by_id: dict[int, HandsetMessage] = {}
        self._by_message_id: dict[str, int] = {}
        self._receipts: dict[int, str] = {}
        self._ids = itertools.count(1)
        self._subscribers: set[asyncio.Queue[HandsetMessage | None]] = set()

    def add(self, **values: Any) -> HandsetMessage:
        message = HandsetMessage(id=next(self._ids), **values)
        history = self._history.get(message.msisdn)
        if history is None:
            history = self._history[message.msisdn] = deque()
        if len(history) >= self._keep:
            old = self._by_id.pop(history.popleft())
            self._receipts.pop(old.id, None)
            for mid in old.message_ids:
                self._by_message_id.pop(mid, None)
        history.append(message.id)
        self._by_id[message.id] = message
        for mid in message.message_ids:
            self._by_message_id[mid] = message.id
        if self._subscribers:
            self._publish(message)
        return message

    def set_receipt(self, message_id: str, state: str) -> None:
        """Record the receipt state of the logical message that part ``message_id`` belongs to.

        Kept beside the record and merged on read: receipts arrive thousands a second, reads
        are rare.
        """
        key = self._by_message_id.get(message_id)
        if key is None or self._receipts.get(key) == state:
            return
        self._receipts[key] = state
        if self._subscribers:
            self._publish(self._read(key))

    def _read(self, key: int) -> HandsetMessage:
        message = self._by_id[key]
        state = self._receipts.get(key)
        return message if state is None else replace(message, receipt=state)

    def messages(self, msisdn: str | None = None) -> list[HandsetMessage]:
        if msisdn is not None:
            return [self._read(i) for i in self._history.get(msisdn, ())]
        return [self._read(i) for i in sorted(self._by_id)]

    def clear(self) -> None:
        self._history.clear()
        self._by_id.clear()
        self._by_message_id.clear()
        self._receipts.clear()

    def subscribe(self) -> asyncio.Queue[HandsetMessage | None]:
        """A queue receiving every new or changed message; ``None`` means "you fell behind"."""
        queue: asyncio.Queue[HandsetMessage | None] = asyncio.Queue(SUBSCRIBER_BACKLOG + 1)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[HandsetMessage | None]) -> None:
        self._subscribers.discard(queue)

    def close(self) -> None:
        """Tell every subscriber the stream ended (server shutdown)."""
        for queue in list(self._subscribers):
            self._end(queue)

    def _publish(self, message: HandsetMessage) -> None:
        for queue in list(self._subscribers):
            if queue.qsize() >= SUBSCRIBER_BACKLOG:
                self._end(queue)
            else:
                queue.put_nowait(message)

    def _end(self, queue: asyncio.Queue[HandsetMessage | None]) -> None:
        self._subscribers.discard(queue)
        while queue.full():
            queue.get_nowait()
        queue.put_nowait(None)
