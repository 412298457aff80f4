"""Delivery receipts of the simulated SMSC: their text, their deliver_sm, the states kept for
query_sm."""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gateway.smpp import wire
from gateway.smpp.pdu import MessageState, Pdu, Status
from gateway.sms.receipts import format_receipt
from simulator.delivery import Delivery
from simulator.faults import RECEIPT_STATES

#: Final states remembered for query_sm; the oldest are forgotten beyond this.
QUERY_LIMIT = 100_000


def receipt_text(message_id: str, state: str, submitted: float, done: float, text: str) -> str:
    """The SMSC receipt body of SMPP 3.4 appendix B via :func:`gateway.sms.receipts.format_receipt`.

    ``state`` is a ``stat:`` word of :data:`RECEIPT_STATES`; err is 000 when delivered, else 001.
    """
    return format_receipt(
        message_id,
        MessageState(RECEIPT_STATES[state]),
        submitted_at=_minute(int(submitted) // 60),
        done_at=_minute(int(done) // 60),
        error="000" if state == "DELIVRD" else "001",
        text=text,
    )


@functools.lru_cache(maxsize=4)
def _minute(minute: int) -> datetime:
    """Local time of a minute since the epoch (cached: receipts come thousands a second)."""
    return datetime.fromtimestamp(minute * 60)


def receipt_delivery(
    system_id: str, params: Mapping[str, Any], message_id: str, state: str, excerpt: str
) -> Delivery:
    """The receipt of the submit_sm with ``params``: pre-packed when the fast path can, else a
    :class:`Pdu` the codec checks."""
    source = params.get("source_addr", "")
    destination = params.get("destination_addr", "")
    now = time.time()
    text = receipt_text(message_id, state, now, now, excerpt).encode("ascii", "replace")
    body = wire.receipt_body(
        source_ton=params.get("dest_addr_ton", 1),
        source_npi=params.get("dest_addr_npi", 1),
        source=destination,
        dest_ton=params.get("source_addr_ton", 0),
        dest_npi=params.get("source_addr_npi", 0),
        destination=source,
        text=text,
        message_id=message_id,
        message_state=RECEIPT_STATES[state],
    )
    if body is not None:
        return Delivery(None, system_id, body=body, receipt=(message_id, state), destination=source)
    fields: dict[str, Any] = {  # an address the fast path will not pack: the codec decides
        "service_type": "",
        "source_addr_ton": params.get("dest_addr_ton", 1),
        "source_addr_npi": params.get("dest_addr_npi", 1),
        "source_addr": destination,
        "dest_addr_ton": params.get("source_addr_ton", 0),
        "dest_addr_npi": params.get("source_addr_npi", 0),
        "destination_addr": source,
        "esm_class": 0x04,
        "data_coding": 0,
        "short_message": text,
        "receipted_message_id": message_id,
        "message_state": RECEIPT_STATES[state],
    }
    pdu = Pdu("deliver_sm", params=fields)
    return Delivery(pdu, system_id, receipt=(message_id, state), destination=source)


class FinalStates:
    """The final state of each message, for query_sm (the newest ``limit`` remembered)."""

    def __init__(self, limit: int = QUERY_LIMIT) -> None:
        self._states: dict[str, str] = {}
        self._order: deque[str] = deque()
        self._limit = limit

    def remember(self, message_id: str, state: str) -> None:
        states = self._states
        states[message_id] = state
        order = self._order
        order.append(message_id)
        if len(order) > self._limit:
            states.pop(order.popleft(), None)

    def query(self, pdu: Pdu) -> Pdu:
        """The query_sm_resp to ``pdu``."""
        message_id = str(pdu.get("message_id", ""))
        state = self._states.get(message_id)
        if state is None:
            return pdu.response(Status.ESME_RINVMSGID, message_id=message_id)
        return pdu.response(
            0,
            message_id=message_id,
            final_date="",
            message_state=RECEIPT_STATES[state],
            error_code=0,
        )
