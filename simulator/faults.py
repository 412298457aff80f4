"""Fault injection for the simulator: a switchable :class:`Faults` record and the hook object.

Tests break the SMSC in two ways, as aiosmtpd's handler lets them break an SMTP server:
- flip a field of :class:`Faults` at run time (from Python, or over HTTP with
  ``POST /api/v1/faults``), e.g. ``sim.faults.update(throttle=50)``;
- replace a method of :class:`SimulatorHandler` (``sim.handler.submit_status = lambda ...``) for
  anything the switches do not cover.

The hooks are plain (not async) functions on purpose: they run on the submit hot path, once per
PDU, and an awaitable per PDU would cost a task each.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from gateway.smpp.pdu import Pdu, Status

#: Receipt ``stat:`` words and the message_state TLV value each maps to.
RECEIPT_STATES: Mapping[str, int] = {
    "DELIVRD": 2,
    "EXPIRED": 3,
    "DELETED": 4,
    "UNDELIV": 5,
    "ACCEPTD": 6,
    "UNKNOWN": 7,
    "REJECTD": 8,
}


class FaultError(ValueError):
    """A fault switch was given a value it cannot take (the message names the switch)."""


@dataclass
class Faults:
    """The switches. Every field has a harmless default; ``reset()`` returns to it.

    ``throttle``: submits per second (per account) above which submits are refused with
    ``throttle_status``; ``reject_status``: answer every submit (or the next ``reject_count``)
    with this status; ``delay``: seconds before each response; ``drop_after``: close the
    connection that sends the PDU after this many more (0 = the next one; one-shot);
    ``refuse_binds_until``: loop time until which binds get ESME_RBINDFAIL; ``duplicate_mo``:
    every MO is delivered twice with the same content; ``receipt_states``: final states cycled
    through receipts; ``receipt_first``: the receipt is written before the submit_sm_resp;
    ``receipt_delay``: seconds before a receipt.
    """

    throttle: float = 0.0
    throttle_status: int = Status.ESME_RTHROTTLED
    reject_status: int = 0
    reject_count: int | None = None
    delay: float = 0.0
    drop_after: int | None = None
    refuse_binds_until: float = 0.0
    duplicate_mo: bool = False
    receipt_states: tuple[str, ...] = ("DELIVRD",)
    receipt_first: bool = False
    receipt_delay: float = 0.0
    _states: Iterator[str] = field(default_factory=lambda: itertools.cycle(("DELIVRD",)))

    def update(self, **changes: Any) -> None:
        """Set switches by name, validating each (``FaultError`` names the bad one)."""
        names = {f.name for f in fields(self) if not f.name.startswith("_")}
        for name, value in changes.items():
            if name not in names:
                raise FaultError(f"unknown fault {name!r}; known: {', '.join(sorted(names))}")
            setattr(self, name, _coerce(name, value))
        if "receipt_states" in changes:
            self._states = itertools.cycle(self.receipt_states)

    def reset(self) -> None:
        self.update(**{k: v for k, v in asdict(Faults()).items() if not k.startswith("_")})

    def next_receipt_state(self) -> str:
        return next(self._states)

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        out["receipt_states"] = list(self.receipt_states)
        return out


def _coerce(name: str, value: Any) -> Any:
    try:
        if name == "receipt_states":
            states = (value,) if isinstance(value, str) else tuple(str(v) for v in value)
            bad = [s for s in states if s not in RECEIPT_STATES]
            if bad or not states:
                raise FaultError(f"receipt_states: unknown {bad}; use {sorted(RECEIPT_STATES)}")
            return states
        if name in ("duplicate_mo", "receipt_first"):
            if not isinstance(value, bool):
                raise FaultError(f"{name}: expected true or false, got {value!r}")
            return value
        if name in ("reject_count", "drop_after"):
            return None if value is None else _non_negative(name, int(value))
        if name in ("throttle_status", "reject_status"):
            return _non_negative(name, int(value))
        return _non_negative(name, float(value))
    except (TypeError, ValueError) as exc:
        if isinstance(exc, FaultError):
            raise
        raise FaultError(f"{name}: {value!r} is not a valid value") from exc


def _non_negative(name: str, value: Any) -> Any:
    if value < 0:
        raise FaultError(f"{name}: must not be negative, got {value!r}")
    return value


@dataclass
class _Window:
    start: float = 0.0
    count: int = 0


class SimulatorHandler:
    """The decisions an SMSC makes per PDU. Replace a method in a test to inject any fault.

    The default implementation reads :class:`Faults`; ``now`` is the event loop's clock.
    """

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._windows: dict[str, _Window] = {}

    def bind_status(self, system_id: str, pdu: Pdu, now: float) -> int:
        """Status for a bind with the right credentials (ESME_RBINDFAIL while binds are refused)."""
        if now < self.faults.refuse_binds_until:
            return int(Status.ESME_RBINDFAIL)
        return 0

    def submit_status(self, system_id: str, pdu: Pdu, now: float) -> int:
        """Status for a submit_sm / data_sm: rejections first, then the throttle."""
        f = self.faults
        if f.reject_status:
            if f.reject_count is None:
                return f.reject_status
            if f.reject_count > 0:
                f.reject_count -= 1
                return f.reject_status
        if f.throttle > 0:
            window = self._windows.setdefault(system_id, _Window(now))
            if now - window.start >= 1.0:
                window.start, window.count = now, 0
            window.count += 1
            if window.count > f.throttle:
                return f.throttle_status
        return 0

    def response_delay(self, pdu: Pdu) -> float:
        """Seconds to hold the response to ``pdu`` (0 = answer at once)."""
        return self.faults.delay

    def should_drop(self, pdu: Pdu) -> bool:
        """Close the connection that sent ``pdu``? One-shot: ``drop_after`` counts down to it."""
        f = self.faults
        if f.drop_after is None:
            return False
        if f.drop_after > 0:
            f.drop_after -= 1
            return False
        f.drop_after = None
        return True

    def receipt_state(self, pdu: Pdu) -> str:
        """Final state for the receipt of one accepted submit (a ``RECEIPT_STATES`` word)."""
        return self.faults.next_receipt_state()

    def receipt_delay(self, pdu: Pdu) -> float:
        return self.faults.receipt_delay

    def mo_copies(self, source: str, text: str) -> int:
        """How many times an MO is delivered (2 = a duplicate, as SMSCs redeliver)."""
        return 2 if self.faults.duplicate_mo else 1
