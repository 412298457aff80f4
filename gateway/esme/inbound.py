"""An inbound deliver_sm / data_sm becomes one typed record, or nothing.

Three jobs, in this order, each because the SMSC does it to us in production:
1. **Receipts are not commands.** esm_class message type 0x04/0x08/0x20 or a
   ``receipted_message_id`` / ``message_state`` TLV make a :class:`ReceiptEvent`; its text
   (``id:... stat:DELIVRD ...``) never reaches the dialogs.
2. **Redelivery is dropped, a subscriber's own repeat is not.** An SMSC offers an MO again
   only when the SMPP exchange failed: our deliver_sm_resp came after its response timeout, or
   the connection dropped before it could take it (on a live TCP connection nothing is lost).
   Each PDU gets a key from its source, destination, content and concatenation reference
   (:func:`dedup_key`); a PDU is a candidate only when its key equals the last PDU this process
   handed on from that subscriber (``3IJA``, ``3IJA 605...``, ``3IJA`` is three commands) and
   that one was handled successfully: a copy of a turn that raised (``TurnUnavailable``: the
   SMSC was answered ``ESME_RX_T_APPN``) is processed. An SMS candidate is a redelivery when
   (a) it arrived while we were still answering the previous copy and more than
   ``smsc_response_timeout`` (10 s) after it — the SMSC gave up waiting for our answer —, or
   (b) our answer to the previous copy was written more than ``smsc_response_timeout`` after it
   arrived and this one comes within ``dedup_ttl`` (120 s), or (c) an SMPP connection of this
   process was lost since the previous copy arrived (:meth:`InboundProcessor.connection_lost`:
   our deliver_sm_resp may never have reached the SMSC, which offers the MO again after
   reconnecting) and it comes within ``dedup_ttl``. Anything else — ``NIE`` twice in a second,
   ``PAKIET`` again after the reply — is the subscriber's and gets its own answer.
   USSD PDUs are keyed only when they carry ``its_session_info``. Many SMSCs echo it unchanged
   through a whole session, and a handset answers a menu within a second, so a USSD candidate
   has no time window. It is a new turn when, since the previous copy arrived, the SMSC accepted
   a reply of ours to the subscriber (:meth:`InboundProcessor.replied`) or this process's turn
   queued one (:meth:`InboundProcessor.queued`, told by the router): ``2``, menu, ``2`` again
   are two turns, even when the second ``2`` comes before the first turn has finished (the
   runtime queues the menu before it saves the state) or the menu left through another process —
   unless a link was lost since the first ``2`` arrived; then only a menu the SMSC took counts.
   Otherwise it is a redelivery when it came while we were answering the previous copy (a
   handset waits for the menu before it answers again), or — with a private outbox, where every
   reply leaves through this process — always; with an outbox shared by several processes
   (``private_outbox=False``) the menu may have left through another process, so only (c) makes
   it a copy. A redelivery that reaches another process, or this one after a restart, is handed
   on: a repeated answer is the lesser harm than a command left unanswered.
3. **Long MO is reassembled** with :class:`gateway.sms.reassembly.Reassembler`; nothing is
   handed on until every part is in.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Literal

from backend.errors import InvalidInput
from gateway.smpp.pdu import ESM_MESSAGE_TYPE_MASK, ESM_UDHI, MessageState, Pdu, Status
from gateway.sms import receipts
from gateway.sms.decoding import decode_short_message
from gateway.sms.events import InboundMessage, InboundSink, ReceiptEvent
from gateway.sms.msisdn import normalise_msisdn
from gateway.sms.reassembly import Incomplete, Reassembler

log = logging.getLogger(__name__)

#: esm_class message types that are notifications, not subscriber text.
RECEIPT_TYPES = frozenset({0x04, 0x08, 0x20})
#: how long after a copy a connection loss still makes its repeat a redelivery (seconds)
DEFAULT_DEDUP_TTL = 120.0
#: how long the SMSC waits for our deliver_sm_resp before it offers the MO again (seconds)
DEFAULT_SMSC_RESPONSE_TIMEOUT = 10.0
#: ``MessageState.X.name`` is an enum descriptor call; a dict look-up per receipt is cheaper.
_STATE_NAMES: dict[MessageState, str] = {state: state.name for state in MessageState}
#: The PDU fields a dedup key covers, in the order they are hashed.
_DEDUP_FIELDS = (
    "source_addr",
    "destination_addr",
    "data_coding",
    "esm_class",
    "short_message",
    "message_payload",
    "sar_msg_ref_num",
    "sar_segment_seqnum",
    "ussd_service_op",
    "its_session_info",
)


def is_receipt(pdu: Pdu) -> bool:
    get = pdu.params.get
    esm = int(get("esm_class", 0) or 0)
    if esm & ESM_MESSAGE_TYPE_MASK in RECEIPT_TYPES:
        return True
    return get("receipted_message_id") is not None or get("message_state") is not None


def dedup_key(pdu: Pdu) -> str | None:
    """The identity of one PDU's content for redelivery detection (None: do not dedup).

    Each field is hashed as a 4-octet length and its octets, all in one call (the same digest
    as feeding them one by one).
    """
    get = pdu.params.get
    if get("ussd_service_op") is not None and get("its_session_info") is None:
        return None
    chunks: list[bytes] = []
    append = chunks.append
    for value in map(get, _DEDUP_FIELDS):
        if value is None:  # most optional fields: precomputed
            append(_NONE_FIELD)
        elif type(value) is int and 0 <= value <= 0xFF:  # octet fields: precomputed
            append(_OCTET_FIELDS[value])
        else:
            raw = value if isinstance(value, bytes) else str(value).encode()
            append(len(raw).to_bytes(4, "big"))
            append(raw)
    return "mo:" + hashlib.blake2b(b"".join(chunks), digest_size=16).hexdigest()


def _length_prefixed(raw: bytes) -> bytes:
    return len(raw).to_bytes(4, "big") + raw


#: How :func:`dedup_key` hashes an absent field (``str(None)``) and an octet-sized integer.
_NONE_FIELD = _length_prefixed(b"None")
_OCTET_FIELDS = tuple(_length_prefixed(str(i).encode()) for i in range(256))


class InboundProcessor:
    """The session's ``on_inbound``: classify, dedup, reassemble, hand on to ``sink``."""

    def __init__(
        self,
        sink: InboundSink,
        *,
        dedup_ttl: float = DEFAULT_DEDUP_TTL,
        smsc_response_timeout: float = DEFAULT_SMSC_RESPONSE_TIMEOUT,
        reassembly_timeout: float = 300.0,
        country_code: str = "48",
        clock: Callable[[], float] = time.monotonic,
        max_sources: int = 100_000,
        private_outbox: bool = True,
        receipts_now: Callable[[ReceiptEvent], object] | None = None,
    ) -> None:
        self._sink = sink
        # Where receipts go when they need no waiting (:meth:`handle_now`); else to ``sink``.
        self._receipts_now = receipts_now
        self._dedup_ttl = dedup_ttl
        self._smsc_timeout = smsc_response_timeout
        # Every reply to our turns leaves through this process, so ``replied`` sees them all.
        self._private_outbox = private_outbox
        self._reassembler = Reassembler(reassembly_timeout)
        self._last: OrderedDict[str, _Turn] = OrderedDict()  # source → last PDU handed on (LRU)
        self._max_sources = max_sources
        # Orders arrivals, answers, replies and connection losses (a counter: no clock ties).
        self._tick = 0
        self._lost = 0  # tick of the last lost SMPP connection
        self._locks: dict[str, list[Any]] = {}  # source → [asyncio.Lock, users]
        self._country_code = country_code
        # raw source_addr → normalised (a pure function of it; bounded like ``_last``)
        self._sources: dict[str, str] = {}
        self._clock = clock
        self.messages = 0
        self.receipts = 0
        self.duplicates = 0
        self.parts_waiting = 0

    def replied(self, msisdn: str) -> None:
        """The SMSC accepted a reply to ``msisdn``: its next USSD answer starts a new turn."""
        turn = self._last.get(self._msisdn(msisdn))
        if turn is not None:
            self._tick += 1
            turn.replied = self._tick

    def queued(self, msisdn: str) -> None:
        """A reply to ``msisdn``'s turn is being queued to leave (by this process's turn,
        whichever process's bind sends it): its next USSD answer answers that menu. Told by
        the router as the put begins (once stored, another process may send the menu before
        the put returns here), so a fast answer that overtakes the SMSC's acceptance of the
        menu — or meets a menu sent by another process — is a new turn, not a copy."""
        turn = self._last.get(self._msisdn(msisdn))
        if turn is not None:
            self._tick += 1
            turn.queued = self._tick

    def connection_lost(self) -> None:
        """An SMPP connection of this process closed: a deliver_sm_resp written before may not
        have reached the SMSC, which then offers that MO again after reconnecting."""
        self._tick += 1
        self._lost = self._tick

    async def __call__(self, pdu: Pdu) -> int:
        self._tick += 1
        arrived = self._tick  # before any await: the order the link handed the PDUs over
        source = self._msisdn(str(pdu.params.get("source_addr", "")))
        if is_receipt(pdu):
            return await self._receipt(pdu, source)
        at = self._clock()
        # One subscriber's PDUs are handled one at a time, in arrival order (the session starts
        # a task per PDU in that order and asyncio.Lock queues its waiters FIFO): "3IJA ..."
        # then "TAK 111111" must reach the dialogs in that order, and a copy that came while
        # its original was in the sink is judged once the original's outcome is known.
        entry = self._locks.get(source)
        if entry is None:
            entry = self._locks[source] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                return await self._message_pdu(pdu, source, arrived, at)
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._locks[source]

    async def _message_pdu(self, pdu: Pdu, source: str, arrived: int, at: float) -> int:
        key = dedup_key(pdu)
        turn: _Turn | None = None
        if key is not None:
            reason = self._redelivery(pdu, self._last.get(source), key, arrived, at)
            if reason is not None:
                self.duplicates += 1
                log.info("duplicate MO dropped (%s)", reason, extra={"msisdn": source})
                return Status.ESME_ROK
            turn = self._last[source] = _Turn(key, arrived, at)
            self._last.move_to_end(source)
            if len(self._last) > self._max_sources:
                self._last.popitem(last=False)
        try:
            return await self._hand_on(pdu, source, key)
        except BaseException:  # raised or cancelled: the SMSC was not answered ESME_ROK
            if turn is not None:
                turn.failed = True
            raise
        finally:
            if turn is not None:
                self._tick += 1
                turn.answered = self._tick
                turn.answered_at = self._clock()

    def _redelivery(
        self, pdu: Pdu, previous: _Turn | None, key: str, arrived: int, at: float
    ) -> str | None:
        """Why this PDU is a copy of ``previous`` (the subscriber's last one handed on), or None
        when it is a new message."""
        if previous is None or previous.key != key or previous.failed:
            return None
        age = at - previous.at
        ussd = pdu.get("ussd_service_op") is not None
        if (
            ussd
            and self._lost < previous.arrived
            and previous.arrived < max(previous.replied, previous.queued) < arrived
        ):
            # Our turn queued a menu, or the SMSC took one, since the previous answer and no
            # link was lost meanwhile: this one answers that menu, even while the previous turn
            # is still finishing (its reply leaves before its state is saved; a handset or a
            # USSD browser answers at once). After a loss our deliver_sm_resp may not have
            # reached the SMSC, which offers the same answer again: the rules below decide.
            return None
        in_flight = previous.answered == 0 or arrived < previous.answered
        if in_flight and ussd:
            # A handset waits for the menu before it answers again: the same answer before our
            # reply is the network's copy.
            return "came while the first was being answered"
        if in_flight:
            if age > self._smsc_timeout:
                return "the SMSC gave up waiting for our answer"
            if previous.arrived < self._lost:
                return "came while the first was being answered, after a lost connection"
            return None  # typed twice: the subscriber gets two answers
        if ussd:
            # No time window: a handset answers a menu within a second. With a private outbox
            # the same answer before our menu left is a copy (the subscriber had nothing to
            # answer yet). With a shared one the menu may leave through another process and
            # ``replied`` never come here: then a copy needs a sign that our deliver_sm_resp
            # was lost.
            if age > self._dedup_ttl or previous.arrived < previous.replied < arrived:
                return None
            if self._private_outbox:
                return "ussd answer before our reply"
            if previous.arrived < self._lost:
                return "ussd answer after a lost connection"
            return None
        if age > self._dedup_ttl:
            return None
        if previous.answered_at - previous.at > self._smsc_timeout:
            return "our answer came after the SMSC's response timeout"
        if previous.arrived < self._lost:
            return "after a lost connection"
        return None

    async def _hand_on(self, pdu: Pdu, source: str, key: str | None) -> int:
        try:
            whole = self._reassembler.add(source, pdu.params, self._clock())
        except ValueError:
            log.warning("undecodable MO dropped", extra={"msisdn": source})
            return Status.ESME_ROK
        if whole is None:
            self.parts_waiting += 1
            return Status.ESME_ROK
        await self._sink(self._message(pdu, source, whole, key))
        self.messages += 1
        return Status.ESME_ROK

    @property
    def evictions(self) -> dict[str, int]:
        """Long messages given up on for a limit, by reason (``sender_limit``, ``evicted``)."""
        return dict(self._reassembler.evictions)

    def expire(self) -> list[Incomplete]:
        """Drop long messages whose parts never all came (call periodically)."""
        return self._reassembler.expire(self._clock())

    def handle_now(self, pdu: Pdu) -> int | None:
        """A delivery receipt, when ``receipts_now`` takes them: parsed, handed over and
        answered without a task (one arrives per reply sent). None for anything else."""
        deliver = self._receipts_now
        if deliver is None or not is_receipt(pdu):
            return None
        self._tick += 1
        source = self._msisdn(str(pdu.params.get("source_addr", "")))
        event = self._receipt_event(pdu, source)
        if event is not None:
            deliver(event)
        return Status.ESME_ROK

    async def _receipt(self, pdu: Pdu, source: str) -> int:
        event = self._receipt_event(pdu, source)
        if event is not None:
            await self._sink(event)
        return Status.ESME_ROK

    def _receipt_event(self, pdu: Pdu, source: str) -> ReceiptEvent | None:
        """The receipt as an event (counted), or None when unreadable (logged, dropped)."""
        params = pdu.params
        get = params.get
        data = get("short_message") or get("message_payload") or b""
        try:
            _, body = decode_short_message(
                bytes(data),
                int(get("data_coding", 0) or 0),
                bool(int(get("esm_class", 0) or 0) & ESM_UDHI),
            )
        except ValueError:
            body = ""
        try:
            receipt = receipts.parse_receipt(params, body or None)
        except receipts.ReceiptError:
            log.warning("unreadable receipt dropped", extra={"msisdn": source})
            return None
        self.receipts += 1
        return ReceiptEvent(
            receipt.message_id, _STATE_NAMES[receipt.state], receipt.error, source, receipt
        )

    def _message(self, pdu: Pdu, source: str, whole: str, key: str | None) -> InboundMessage:
        op = pdu.get("ussd_service_op")
        info = pdu.get("its_session_info")
        channel: Literal["sms", "ussd"] = (
            "ussd" if op is not None or pdu.get("service_type") == "USSD" else "sms"
        )
        session_id = None
        if channel == "ussd":
            session_id = f"{source}:{_session_number(info)}" if info is not None else source
        return InboundMessage(
            msisdn=source,
            text=whole,
            channel=channel,
            ussd_op=int(op) if op is not None else None,
            session_id=session_id,
            message_id=key or f"mo:{source}:{pdu.sequence}",
            destination=str(pdu.get("destination_addr", "")),
            its_session_info=info,
        )

    def _msisdn(self, raw: str) -> str:
        known = self._sources.get(raw)
        if known is not None:
            return known
        try:
            number = normalise_msisdn(raw, self._country_code)
        except InvalidInput:  # alphanumeric or odd source: keep it as the SMSC gave it
            number = raw
        if len(self._sources) >= self._max_sources:
            self._sources.clear()  # a cache: dropping it only costs recomputing
        self._sources[raw] = number
        return number


class _Turn:
    """The last PDU handed on from one subscriber: its dedup key, when it arrived (tick and
    clock), when it was answered (tick and clock) and whether that failed, when the SMSC last
    took our reply and when our turn last queued one."""

    __slots__ = ("answered", "answered_at", "arrived", "at", "failed", "key", "queued", "replied")

    def __init__(self, key: str, arrived: int, at: float) -> None:
        self.key = key
        self.arrived = arrived
        self.at = at
        self.answered = 0  # tick; 0 while the sink has it
        self.answered_at = at  # clock, once answered
        self.failed = False
        self.replied = 0
        self.queued = 0


def _session_number(info: Any) -> int:
    """its_session_info octet 1 is the session number (octet 2: sequence + end bit)."""
    if isinstance(info, bytes):
        return info[0] if info else 0
    return (int(info) >> 8) & 0xFF
