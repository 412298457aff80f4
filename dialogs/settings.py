"""``DialogSettings``: the conversation timings and the default language, one typed object."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DialogSettings:
    """``language``: the replies' language before a subscriber's own is known (``pl``/``en``).
    ``sms_dialog_timeout`` / ``ussd_timeout``: seconds an idle SMS dialog / USSD session is kept.
    ``sms_pending_valid``: seconds a quoted change waits for its ``TAK`` + code."""

    language: str = "pl"
    sms_dialog_timeout: float = 3600.0
    sms_pending_valid: float = 600.0
    ussd_timeout: float = 120.0
