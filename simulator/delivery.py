"""A deliver_sm the simulated SMSC owes an ESME, as it waits, is sent and is answered."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.smpp import wire
from gateway.smpp.codec import decode
from gateway.smpp.pdu import Pdu


@dataclass(slots=True)
class Delivery:
    """A deliver_sm the SMSC must get acknowledged by some receiving session of ``system_id``
    (None: any). ``done`` runs once with the final deliver_sm_resp status.

    A receipt carries its pre-packed ``body`` (:func:`gateway.smpp.wire.receipt_body`) and the
    ``receipt`` (message id, state) to record once acknowledged; ``pdu`` is then built only if
    some path needs it.
    """

    pdu: Pdu | None
    system_id: str | None = None
    attempts: int = 0
    done: Callable[[int], None] | None = field(default=None)
    body: bytes | None = None
    receipt: tuple[str, str] | None = None
    destination: str = ""

    def template(self) -> Pdu:
        """The deliver_sm to send (sequence 0), decoded from ``body`` if it was pre-packed."""
        if self.pdu is None:
            assert self.body is not None
            self.pdu = decode(wire.deliver_sm(0, self.body))
        return self.pdu

    def destination_addr(self) -> str:
        if self.pdu is None:
            return self.destination
        return str(self.pdu.get("destination_addr"))
