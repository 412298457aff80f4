"""``DialogSettings``: the conversation timings and the default language, one typed object."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

#: How many SMS parts a reply costs as the server would send it (its text policy).
PartCounter = Callable[[str], int]


@dataclass(frozen=True, slots=True)
class DialogSettings:
    """``language``: the replies' language before a subscriber's own is known (``pl``/``en``).
    ``sms_dialog_timeout`` / ``ussd_timeout``: seconds an idle SMS dialog / USSD session is kept.
    ``sms_pending_valid``: seconds a quoted change waits for its ``TAK`` + code.
    ``sms_parts``: the parts a reply costs; with it a prompt that replaces a pending change says
    so only in words that cost no extra part (None: the full note always)."""

    language: str = "pl"
    sms_dialog_timeout: float = 3600.0
    sms_pending_valid: float = 600.0
    ussd_timeout: float = 120.0
    sms_parts: PartCounter | None = None
