"""Hand-written struct packing for the hot PDUs (filled in next; empty tables = smpplib path)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from gateway.pdu import Pdu

ENCODERS: Final[Mapping[str, Callable[[Pdu], bytes]]] = {}
DECODERS: Final[Mapping[str, Callable[[bytes], Pdu]]] = {}
