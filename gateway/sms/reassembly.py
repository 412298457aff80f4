"""Reassembly of concatenated MO messages (8-bit UDH, 16-bit UDH, SAR TLVs, message_payload).

Parts are keyed by source, the concatenation scheme, reference and total, so two messages from one
handset with the same reference but a different part count do not mix. Parts may arrive in any
order; a repeated part (an SMSC redelivery) is ignored, also for ``timeout`` seconds after its
message completed (a redelivery after a lost deliver_sm_resp must not start a message that later
expires as a broken partial). Bodies are kept undecoded and joined before
decoding, so an escape sequence or surrogate pair that a sender split across parts still comes out
right.

Sans-I/O like the codec: the caller passes ``now`` (any monotonic clock in seconds) and calls
:meth:`Reassembler.expire` from its own timer; the incomplete messages come back to it to decide
what to do (e.g. pass the partial text on with a marker). Memory is bounded per sender first:
one source has at most ``per_sender`` messages and ``per_sender_bytes`` bytes of parts waiting,
past which *its own* oldest message is evicted ("sender_limit"), so one sender's flood of first
parts cannot push out another subscriber's half-received message. Beyond ``max_pending``
messages in all, the oldest is evicted ("evicted"): the last guard, counted in ``evictions``.
Evicted messages are reported by the next ``expire``.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.smpp.pdu import ESM_UDHI
from gateway.sms.decoding import Udh, decode_body, split_body

Scheme = Literal["udh8", "udh16", "sar"]
#: Why a message was given up: its parts stopped coming, its sender had too many waiting, or
#: all senders together had.
Reason = Literal["timeout", "sender_limit", "evicted"]


@dataclass(frozen=True, slots=True)
class Incomplete:
    """A concatenated message given up on: which parts came (``received``: seq → text)."""

    source: str
    scheme: Scheme
    ref: int
    total: int
    received: Mapping[int, str]
    first_seen: float
    reason: Reason

    @property
    def missing(self) -> tuple[int, ...]:
        return tuple(s for s in range(1, self.total + 1) if s not in self.received)

    def text(self, marker: str = "[…]") -> str:
        """The received text in order, ``marker`` standing for each run of missing parts."""
        out: list[str] = []
        for seq in range(1, self.total + 1):
            piece = self.received.get(seq)
            if piece is not None:
                out.append(piece)
            elif not out or out[-1] is not marker:
                out.append(marker)
        return "".join(out)


@dataclass(slots=True)
class _Pending:
    first_seen: float
    parts: dict[int, tuple[str, bytes]] = field(default_factory=dict)


_Key = tuple[str, Scheme, int, int]


def _join(parts: list[tuple[str, bytes]]) -> str:
    codecs = {codec for codec, _ in parts}
    if len(codecs) == 1:
        codec = parts[0][0]
        if codec != "utf-16-be" or all(len(data) % 2 == 0 for _, data in parts):
            return decode_body(b"".join(data for _, data in parts), codec)
    return "".join(decode_body(data, codec) for codec, data in parts)


class Reassembler:
    """Collects the parts of concatenated MO messages until each message is whole."""

    def __init__(
        self,
        timeout: float,
        *,
        max_pending: int = 10_000,
        per_sender: int = 8,
        per_sender_bytes: int = 64 * 1024,
        packed: bool = False,
    ) -> None:
        if timeout <= 0 or max_pending < 1 or per_sender < 1 or per_sender_bytes < 1:
            raise ValueError("timeout must be > 0 and the limits >= 1")
        self.timeout = timeout
        self.max_pending = max_pending
        self.per_sender = per_sender
        self.per_sender_bytes = per_sender_bytes
        self.packed = packed
        #: messages given up on for a limit, by reason ("sender_limit", "evicted")
        self.evictions: Counter[str] = Counter()
        self._pending: OrderedDict[_Key, _Pending] = OrderedDict()
        self._senders: dict[str, OrderedDict[_Key, None]] = {}  # source → its keys, oldest first
        self._sender_bytes: Counter[str] = Counter()
        self._evicted: deque[Incomplete] = deque(maxlen=max_pending)
        self._done: OrderedDict[_Key, float] = OrderedDict()  # completed key → when

    def __len__(self) -> int:
        """Messages waiting for parts."""
        return len(self._pending)

    def add(self, source: str, pdu_params: Mapping[str, Any], now: float) -> str | None:
        """Take one deliver_sm/data_sm's params; return the whole text once it is complete.

        A message that is not concatenated comes straight back. Raises
        :class:`gateway.sms.decoding.UdhError` when UDHI is set but the header is malformed.
        """
        payload = pdu_params.get("message_payload")
        data: bytes = payload if payload else pdu_params.get("short_message") or b""
        udhi = bool(int(pdu_params.get("esm_class", 0) or 0) & ESM_UDHI)
        dc = int(pdu_params.get("data_coding", 0) or 0)
        udh, codec, body = split_body(data, dc, udhi, self.packed)
        located = self._locate(udh, pdu_params)
        if located is None:
            return decode_body(body, codec)
        scheme, ref, total, seq = located
        if total == 1:
            return decode_body(body, codec)
        key: _Key = (source, scheme, ref, total)
        self._forget_done(now)
        if key in self._done:
            return None  # a late copy of a part of a message already handed on
        pending = self._pending.get(key)
        if pending is None:
            mine = self._senders.get(source)
            if mine is not None and len(mine) >= self.per_sender:
                self._evict(next(iter(mine)), "sender_limit")
            if len(self._pending) >= self.max_pending:
                self._evict(next(iter(self._pending)), "evicted")
            pending = self._pending[key] = _Pending(now)
            self._senders.setdefault(source, OrderedDict())[key] = None
        if seq in pending.parts:
            return None  # a redelivered part: the first copy stands
        pending.parts[seq] = (codec, body)
        self._sender_bytes[source] += len(body)
        while self._sender_bytes[source] > self.per_sender_bytes:
            oldest = next(iter(self._senders[source]))
            if oldest == key:
                break  # one message alone (at most 255 parts) is always kept
            self._evict(oldest, "sender_limit")
        if len(pending.parts) < total:
            return None
        self._drop(key)
        self._done[key] = now
        while len(self._done) > self.max_pending:
            self._done.popitem(last=False)
        return _join([pending.parts[s] for s in range(1, total + 1)])

    def expire(self, now: float) -> list[Incomplete]:
        """Give up on messages whose first part came ``timeout`` or more seconds before ``now``."""
        out = list(self._evicted)
        self._evicted.clear()
        self._forget_done(now)
        for key in [k for k, p in self._pending.items() if now - p.first_seen >= self.timeout]:
            out.append(self._incomplete(key, self._drop(key), "timeout"))
        return out

    def _drop(self, key: _Key) -> _Pending:
        pending = self._pending.pop(key)
        source = key[0]
        mine = self._senders[source]
        del mine[key]
        self._sender_bytes[source] -= sum(len(data) for _, data in pending.parts.values())
        if not mine:
            del self._senders[source]
            del self._sender_bytes[source]
        return pending

    def _evict(self, key: _Key, reason: Reason) -> None:
        self.evictions[reason] += 1
        self._evicted.append(self._incomplete(key, self._drop(key), reason))

    def _forget_done(self, now: float) -> None:
        while self._done and now - next(iter(self._done.values())) >= self.timeout:
            self._done.popitem(last=False)

    @staticmethod
    def _locate(udh: Udh | None, params: Mapping[str, Any]) -> tuple[Scheme, int, int, int] | None:
        if udh is not None and udh.ref is not None and udh.total is not None and udh.seq:
            scheme: Scheme = "udh16" if udh.ref_bits == 16 else "udh8"
            return scheme, udh.ref, udh.total, udh.seq
        ref = params.get("sar_msg_ref_num")
        total = params.get("sar_total_segments")
        seq = params.get("sar_segment_seqnum")
        if ref is None or total is None or seq is None:
            return None
        total, seq = int(total), int(seq)
        if total < 1 or not 1 <= seq <= total:
            return None  # SMPP 3.4 5.3.2.24: out of range, treat the message as whole
        return "sar", int(ref), total, seq

    @staticmethod
    def _incomplete(key: _Key, pending: _Pending, reason: Reason) -> Incomplete:
        source, scheme, ref, total = key
        received = {
            s: decode_body(data, codec) for s, (codec, data) in sorted(pending.parts.items())
        }
        return Incomplete(source, scheme, ref, total, received, pending.first_seen, reason)
