"""One message through :meth:`SmppSession.submit_many`, the path the outbox sender takes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gateway.esme.records import SubmitError
from gateway.esme.session import SmppSession, SubmitResult


async def submit(session: SmppSession, parts: Sequence[Mapping[str, Any]]) -> SubmitResult:
    """The SMSC's message ids of the parts of one message, or raise its :class:`SubmitError`."""
    [outcome] = await session.submit_many((parts,))
    if isinstance(outcome, SubmitError):
        raise outcome
    return outcome
