"""The outbox: replies wait here until the SMSC accepted every part, then leave.

Theory of operation. ``put`` writes each reply text as one item with a per-subscriber sequence and
a concatenation reference fixed at that moment, so every retry sends *the same parts*. Senders (one
loop per bind, see :mod:`gateway.outbox.sender`) ``take`` items under a lease: an item is handed to
one consumer only while its lease holds, and a subscriber's item is eligible only when every
earlier item of that subscriber has left (sent or failed) — replies to one subscriber leave in the
order produced, across binds and processes. After the SMSC's submit_sm_resp: ``done`` removes the
item; ``retry`` (temporary error, lost link) releases it for later with the parts already accepted
recorded, so only the rest go again; ``fail`` (permanent error) keeps it as failed and logs. A
consumer that dies leaves its lease to expire and another takes the item.

Three stores share this contract and one test suite: :class:`MemoryOutbox` (tests, embedded),
:class:`gateway.outbox.redis.RedisOutbox` (Streams + consumer group, XAUTOCLAIM),
:class:`gateway.outbox.sql.SqlOutbox` (SQLite / PostgreSQL table, when there is no Redis).

:class:`DeliveryTracker` matches delivery receipts to what was sent (see its docstring).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from abc import ABC, abstractmethod
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from gateway.sms import receipts
from gateway.sms.events import InboundMessage, ReceiptEvent

log = logging.getLogger(__name__)

#: Redis key layout of the outbox (arq keeps its prefixes in one place; these are ours).
#: The stream is MSISDN-independent; per-subscriber keys carry the MSISDN in a hash tag.
DEFAULT_LEASE = 120.0
#: What an outbox store raises while it is unreachable or failing (Redis restarting, database
#: connections cut): senders wait and try again instead of dying.
STORE_ERRORS: tuple[type[Exception], ...] = (OSError, RedisError, SQLAlchemyError)


def new_ref() -> int:
    """A concatenation reference (fits the 8-bit and the 16-bit UDH forms alike via masking)."""
    return random.randint(1, 0xFFFF)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One reply on its way: a text for one subscriber plus how to send it.

    ``meta`` is JSON-safe: ``channel`` (``sms``/``ussd``), ``end`` (USSD final or menu),
    ``its_session_info`` (hex), ``source`` (short code). ``accepted`` maps part index to the
    SMSC message id of parts that already went through.
    """

    id: str
    msisdn: str
    text: str
    meta: Mapping[str, Any]
    ref: int
    seq: int
    attempts: int = 0
    accepted: Mapping[int, str] = field(default_factory=dict)


def reply_meta(inbound: InboundMessage | None = None, *, end: bool = True) -> dict[str, Any]:
    """The outbox ``meta`` for a reply to ``inbound`` (USSD: echo its session, menu or final)."""
    if inbound is None or inbound.channel == "sms":
        meta: dict[str, Any] = {"channel": "sms"}
        if inbound is not None and inbound.destination:
            meta["source"] = inbound.destination
        return meta
    meta = {"channel": "ussd", "end": end}
    if inbound.destination:
        meta["source"] = inbound.destination
    info = inbound.its_session_info
    if isinstance(info, bytes):
        meta["its_session_info"] = info.hex()
    elif info is not None:
        meta["its_session_info"] = int(info)
    return meta


class Outbox(ABC):
    """Where replies wait; shared by every bind (and process, for Redis and SQL)."""

    @abstractmethod
    async def put(
        self, msisdn: str, texts: str | Sequence[str], meta: Mapping[str, Any] | None = None
    ) -> list[str]:
        """Queue each text as one item, in order; returns their ids."""

    @abstractmethod
    async def take(self, consumer: str, limit: int = 1, wait: float = 0.0) -> list[OutboxItem]:
        """Lease up to ``limit`` eligible items to ``consumer`` (waiting up to ``wait`` s)."""

    @abstractmethod
    async def done(self, item: OutboxItem, message_ids: Sequence[str]) -> None:
        """Every part was accepted: the item leaves the outbox."""

    @abstractmethod
    async def retry(
        self, item: OutboxItem, delay: float, error: str, accepted: Mapping[int, str]
    ) -> None:
        """A temporary failure: release the item to be sent again after ``delay`` s."""

    @abstractmethod
    async def fail(self, item: OutboxItem, error: str) -> None:
        """A permanent failure: the item leaves the queue, kept as failed."""

    @abstractmethod
    async def depth(self) -> int:
        """Items waiting or leased (failed ones excluded)."""

    async def failed(self) -> list[tuple[OutboxItem, str]]:
        """Items that failed permanently, with their error (for operators and tests)."""
        return []

    async def heartbeat(self, consumer: str) -> None:
        """Keep the leases of items ``consumer`` is still sending (slow or throttled binds)."""
        return None

    async def recover(self, consumer: str, dead: Callable[[str], bool]) -> int:
        """Take back at once what consumers ``dead`` names hold (a crashed process on this host),
        instead of waiting out their leases; returns how many items. ``consumer`` is who may
        be handed them (stores whose leases are per consumer)."""
        return 0

    async def close(self) -> None:
        return None


@dataclass(slots=True)
class _Entry:
    item: OutboxItem
    lease_until: float = 0.0
    not_before: float = 0.0
    owner: str = ""


class MemoryOutbox(Outbox):
    """One process, no persistence: tests and the embedded default without a database."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, lease: float = DEFAULT_LEASE):
        self._clock = clock
        self._lease = lease
        self._queues: OrderedDict[str, deque[_Entry]] = OrderedDict()
        self._failed: list[tuple[OutboxItem, str]] = []
        self._ids = itertools.count(1)
        self._seqs: dict[str, int] = {}
        self._changed = asyncio.Event()

    async def put(
        self, msisdn: str, texts: str | Sequence[str], meta: Mapping[str, Any] | None = None
    ) -> list[str]:
        ids = []
        for text in [texts] if isinstance(texts, str) else texts:
            seq = self._seqs.get(msisdn, 0) + 1
            self._seqs[msisdn] = seq
            item = OutboxItem(str(next(self._ids)), msisdn, text, dict(meta or {}), new_ref(), seq)
            self._queues.setdefault(msisdn, deque()).append(_Entry(item))
            ids.append(item.id)
        self._changed.set()
        return ids

    async def take(self, consumer: str, limit: int = 1, wait: float = 0.0) -> list[OutboxItem]:
        deadline = self._clock() + wait
        while True:
            self._changed.clear()
            now = self._clock()
            out = []
            for queue in self._queues.values():
                head = queue[0]
                if head.lease_until > now or head.not_before > now:
                    continue
                head.lease_until = now + self._lease
                head.owner = consumer
                head.item = replace(head.item, attempts=head.item.attempts + 1)
                out.append(head.item)
                if len(out) >= limit:
                    break
            remaining = deadline - self._clock()
            if out or remaining <= 0:
                return out
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))

    def _pop(self, item: OutboxItem) -> bool:
        queue = self._queues.get(item.msisdn)
        if not queue or queue[0].item.id != item.id:
            return False
        queue.popleft()
        if not queue:
            del self._queues[item.msisdn]
        self._changed.set()
        return True

    async def done(self, item: OutboxItem, message_ids: Sequence[str]) -> None:
        self._pop(item)

    async def retry(
        self, item: OutboxItem, delay: float, error: str, accepted: Mapping[int, str]
    ) -> None:
        queue = self._queues.get(item.msisdn)
        if not queue or queue[0].item.id != item.id:
            return
        head = queue[0]
        head.item = replace(head.item, accepted={**head.item.accepted, **accepted})
        head.lease_until = 0.0
        head.not_before = self._clock() + delay
        self._changed.set()

    async def fail(self, item: OutboxItem, error: str) -> None:
        if self._pop(item):
            self._failed.append((item, error))

    async def heartbeat(self, consumer: str) -> None:
        now = self._clock()
        for queue in self._queues.values():
            head = queue[0]
            if head.owner == consumer and head.lease_until > now:
                head.lease_until = now + self._lease

    async def depth(self) -> int:
        return sum(len(q) for q in self._queues.values())

    async def failed(self) -> list[tuple[OutboxItem, str]]:
        return list(self._failed)


# -- delivery receipts -----------------------------------------------------------------------


@dataclass(slots=True)
class _Sent:
    item_id: str
    msisdn: str
    parts: list[str]  # per part: "submitted" | "delivered" | "failed" | an intermediate state


class DeliveryTracker:
    """Receipts matched to sent parts, whatever order and spelling they come in.

    ``sent(item_id, msisdn, message_ids)`` registers the SMSC id of every part once its
    submit_sm_resp came; ``receipt(event)`` marks a part. A receipt for an id not (yet) known —
    the SMSC may send it before our submit_sm_resp was read — is parked (bounded, FIFO) and
    applied when the id is registered. Ids are matched with :class:`gateway.sms.receipts.IdIndex`
    (hex vs decimal, leading zeros, case). A message is ``delivered`` when every part is,
    ``failed`` as soon as one part failed. Counters are plain attributes;
    ``on_state(item_id, msisdn, state)`` is called when a message reaches a final state.

    Several processes on one SMSC account: the SMSC hands a receipt to any of the account's
    receiving binds, so a receipt parked here may belong to another process.
    :class:`gateway.outbox.receipt_relay.ReceiptRelay` takes what stayed parked past a grace
    (:meth:`stale`) to the others, and applies theirs here with :meth:`foreign`, which never
    parks. The matching itself stays local and free of I/O.
    """

    def __init__(
        self,
        *,
        max_messages: int = 200_000,
        max_early: int = 20_000,
        on_state: Callable[[str, str, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._parts: receipts.IdIndex[tuple[_Sent, int]] = receipts.IdIndex(max_messages)
        self._messages: OrderedDict[str, _Sent] = OrderedDict()
        self._max = max_messages
        # Parked receipts with when they were parked: the index is FIFO by add, so the oldest
        # is always first and :meth:`stale` stops at the first young one.
        self._early: receipts.IdIndex[tuple[float, ReceiptEvent]] = receipts.IdIndex(max_early)
        self._on_state = on_state
        self._clock = clock
        self.submitted = 0
        self.delivered = 0
        self.failed = 0
        self.receipts = 0
        #: receipts received here by the state they report ("DELIVERED", "UNDELIVERABLE", ...)
        self.receipt_states: dict[str, int] = {}
        self.early = 0
        self.relayed_out = 0  # stale receipts the relay published to the other processes
        self.relay_dropped = 0  # stale receipts the relay could not publish (Redis down)
        self.relayed_matched = 0  # other processes' receipts that matched a message of ours
        self.relayed_unmatched = 0  # ... that matched nothing here (dropped)

    @property
    def parked(self) -> int:
        """Receipts waiting for a submit_sm_resp that has not been seen (yet)."""
        return len(self._early)

    def sent(self, item_id: str, msisdn: str, message_ids: Iterable[str]) -> None:
        ids = list(message_ids)
        record = _Sent(item_id, msisdn, ["submitted"] * len(ids))
        messages = self._messages
        messages[item_id] = record
        while len(messages) > self._max:
            messages.popitem(last=False)
        self.submitted += 1
        add = self._parts.add
        for index, message_id in enumerate(ids):
            add(message_id, (record, index))
        if len(self._early):  # nearly always empty in one process: no id work at all then
            for message_id in ids:
                early = self._early.pop(message_id)
                if early is not None:
                    self.early += 1
                    self._apply(early[1])

    def receipt(self, event: ReceiptEvent) -> bool:
        """Apply a receipt; False when it matched nothing yet (parked until it does)."""
        self.receipts += 1
        states = self.receipt_states
        states[event.state] = states.get(event.state, 0) + 1
        if self._apply(event):
            return True
        self._early.add(event.message_id, (self._clock(), event))
        return False

    def stale(self, older_than: float) -> list[ReceiptEvent]:
        """Remove and return the receipts parked at least ``older_than`` s, oldest first.

        The grace lets a receipt that beat our own submit_sm_resp by a few ms still match here;
        what is left after it most likely belongs to another process.
        """
        early = self._early
        if not len(early):
            return []
        cutoff = self._clock() - older_than
        out: list[ReceiptEvent] = []
        while (oldest := early.oldest()) is not None and oldest[0] <= cutoff:
            early.pop_oldest()
            out.append(oldest[1])
        return out

    def relayed(self, count: int, *, dropped: bool = False) -> None:
        """The relay's word on ``count`` receipts :meth:`stale` gave it: published or dropped."""
        if dropped:
            self.relay_dropped += count
        else:
            self.relayed_out += count

    def foreign(self, event: ReceiptEvent) -> bool:
        """Apply a receipt another process got; False (and nothing kept) when it is not ours.

        Not parked and not counted in ``receipts`` (its own process counted it): it belongs to a
        third process, or to a message sent before a restart, and would only fill the park.
        """
        if self._apply(event):
            self.relayed_matched += 1
            return True
        self.relayed_unmatched += 1
        return False

    def _apply(self, event: ReceiptEvent) -> bool:
        found = self._parts.get(event.message_id)
        if found is None:
            return False
        record, index = found
        before = self._state(record)
        state = event.receipt.state
        if event.receipt.is_delivered:
            record.parts[index] = "delivered"
        elif event.receipt.is_final:
            record.parts[index] = "failed"
        else:
            record.parts[index] = state.name.lower()
        after = self._state(record)
        if after != before and after in ("delivered", "failed"):
            if after == "delivered":
                self.delivered += 1
            else:
                self.failed += 1
            if self._on_state is not None:
                self._on_state(record.item_id, record.msisdn, after)
        return True

    def state(self, item_id: str) -> str | None:
        """``submitted``, ``delivered``, ``failed`` or an intermediate receipt state."""
        record = self._messages.get(item_id)
        return None if record is None else self._state(record)

    @staticmethod
    def _state(record: _Sent) -> str:
        parts = record.parts
        if "failed" in parts:
            return "failed"
        for part in parts:
            if part != "delivered":
                return part
        return "delivered"

    def part_states(self, item_id: str) -> list[str]:
        record = self._messages.get(item_id)
        return list(record.parts) if record else []
