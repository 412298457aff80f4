"""What each handset saw: logical messages (reassembled), their parts and receipt states.

The store is the simulator's memory of traffic, read by tests (``sim.messages(msisdn)``), the
HTTP API and the live event stream (SSE). It is bounded per handset so a load test does not grow
it without end, and it keeps no state outside the instance.

Writes outnumber reads by far under load (every submit is recorded, a person reads a few), so a
single-part SMS is kept as its raw octets (:meth:`HandsetStore.add_raw_sms`) and its text is
decoded only when someone reads it or a live subscriber is listening.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from typing import Any, NamedTuple

from gateway.sms.decoding import decode_body

#: Messages kept per handset; older ones are forgotten first.
DEFAULT_KEEP = 200
#: Messages kept over all handsets (a load test to a million numbers stays bounded too).
DEFAULT_KEEP_TOTAL = 100_000
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


class _RawSms(NamedTuple):
    """A single-part MT SMS as submitted; becomes a :class:`HandsetMessage` when read."""

    id: int
    msisdn: str
    peer: str
    data: bytes
    codec: str
    data_coding: int
    message_id: str
    at: float

    @property
    def message_ids(self) -> tuple[str, ...]:
        return (self.message_id,)

    def materialise(self) -> HandsetMessage:
        return HandsetMessage(
            id=self.id,
            msisdn=self.msisdn,
            peer=self.peer,
            direction="mt",
            kind="sms",
            text=decode_body(self.data, self.codec),
            parts=1,
            data_coding=self.data_coding,
            message_ids=(self.message_id,),
            at=self.at,
        )


class HandsetStore:
    """Bounded per-handset history plus fan-out of every change to live subscribers."""

    def __init__(self, keep: int = DEFAULT_KEEP, keep_total: int = DEFAULT_KEEP_TOTAL) -> None:
        self._keep = keep
        self._keep_total = keep_total
        self._order: deque[int] = deque()  # record ids oldest first; may hold forgotten ones
        self._history: dict[str, deque[int]] = {}
        self._by_id: dict[int, HandsetMessage | _RawSms] = {}
        self._by_message_id: dict[str, int] = {}
        self._receipts: dict[int, str] = {}
        self._ids = itertools.count(1)
        # queue → whether it wants receipt changes too (not only new messages)
        self._subscribers: dict[asyncio.Queue[HandsetMessage | None], bool] = {}

    def add(self, **values: Any) -> HandsetMessage:
        message = HandsetMessage(id=next(self._ids), **values)
        self._keep_record(message)
        for mid in message.message_ids:
            self._by_message_id[mid] = message.id
        if self._subscribers:
            self._publish(message)
        return message

    def add_raw_sms(
        self,
        msisdn: str,
        peer: str,
        data: bytes,
        codec: str,
        data_coding: int,
        message_id: str,
        at: float,
    ) -> None:
        """Record a single-part MT SMS by its octets (``codec``: from ``gateway.sms.text``)."""
        record = _RawSms(next(self._ids), msisdn, peer, data, codec, data_coding, message_id, at)
        self._keep_record(record)
        self._by_message_id[message_id] = record.id
        if self._subscribers:
            self._publish(record.materialise())

    def _keep_record(self, record: HandsetMessage | _RawSms) -> None:
        history = self._history.get(record.msisdn)
        if history is None:
            history = self._history[record.msisdn] = deque()
        if len(history) >= self._keep:
            self._forget(self._by_id.pop(history.popleft()))
        history.append(record.id)
        self._by_id[record.id] = record
        order = self._order
        order.append(record.id)
        if len(order) > self._keep_total:
            old = self._by_id.pop(order.popleft(), None)
            if old is not None:  # the oldest overall is the oldest of its handset
                old_history = self._history[old.msisdn]
                if old_history[0] == old.id:
                    old_history.popleft()
                else:
                    old_history.remove(old.id)
                if not old_history:
                    del self._history[old.msisdn]
                self._forget(old)

    def _forget(self, old: HandsetMessage | _RawSms) -> None:
        self._receipts.pop(old.id, None)
        for mid in old.message_ids:
            self._by_message_id.pop(mid, None)

    def set_receipt(self, message_id: str, state: str) -> None:
        """Record the receipt state of the logical message that part ``message_id`` belongs to.

        Kept beside the record and merged on read: receipts arrive thousands a second, reads
        are rare.
        """
        key = self._by_message_id.get(message_id)
        if key is None or self._receipts.get(key) == state:
            return
        self._receipts[key] = state
        if any(self._subscribers.values()):  # someone wants receipt changes
            self._publish(self._read(key), receipt=True)

    def _read(self, key: int) -> HandsetMessage:
        record = self._by_id[key]
        message = record if isinstance(record, HandsetMessage) else record.materialise()
        state = self._receipts.get(key)
        return message if state is None else replace(message, receipt=state)

    def messages(self, msisdn: str | None = None) -> list[HandsetMessage]:
        if msisdn is not None:
            return [self._read(i) for i in self._history.get(msisdn, ())]
        return [self._read(i) for i in sorted(self._by_id)]

    def clear(self) -> None:
        self._history.clear()
        self._order.clear()
        self._by_id.clear()
        self._by_message_id.clear()
        self._receipts.clear()

    def subscribe(
        self, *, receipts: bool = True, backlog: int | None = SUBSCRIBER_BACKLOG
    ) -> asyncio.Queue[HandsetMessage | None]:
        """A queue receiving every new message and, with ``receipts``, every receipt change of
        one (a waiter for new messages skips the two receipts a reply of two parts brings);
        ``None`` means "you fell behind" (more than ``backlog`` events unread). ``backlog=None``:
        never cut off — for an in-process reader that keeps up on average but may fall far
        behind in a burst (a load driver), where re-reading the store to catch up would cost
        more than the queue."""
        size = 0 if backlog is None else backlog + 1
        queue: asyncio.Queue[HandsetMessage | None] = asyncio.Queue(size)
        self._subscribers[queue] = receipts
        return queue

    def unsubscribe(self, queue: asyncio.Queue[HandsetMessage | None]) -> None:
        self._subscribers.pop(queue, None)

    def close(self) -> None:
        """Tell every subscriber the stream ended (server shutdown)."""
        for queue in list(self._subscribers):
            self._end(queue)

    def _publish(self, message: HandsetMessage, *, receipt: bool = False) -> None:
        for queue, receipts in list(self._subscribers.items()):
            if receipt and not receipts:
                continue
            if queue.maxsize and queue.qsize() >= queue.maxsize - 1:
                self._end(queue)
            else:
                queue.put_nowait(message)

    def _end(self, queue: asyncio.Queue[HandsetMessage | None]) -> None:
        self.unsubscribe(queue)
        while queue.full():
            queue.get_nowait()
        queue.put_nowait(None)
