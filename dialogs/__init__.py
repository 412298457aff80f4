"""The conversations: SMS commands and USSD menus, declared as data, texts in a catalogue."""

from __future__ import annotations

from typing import Any


def build_dialogs(settings: Any = None, clock: Any = None) -> dict[str, Any]:
    """The dialogs of both channels, keyed by channel, with TTLs and language from ``settings``;
    ``clock`` (a ``backend.clock.Clock``, the system clock when None) dates pending changes."""
    from dialogs.sms import SmsDialog
    from dialogs.ussd import UssdDialog

    lang = getattr(settings, "language", "pl")
    sms_ttl = getattr(settings, "sms_dialog_timeout", 3600.0)
    valid = getattr(settings, "sms_pending_valid", 600.0)
    return {
        "sms": SmsDialog(sms_ttl, lang, clock, valid),
        "ussd": UssdDialog(ttl=getattr(settings, "ussd_timeout", 120.0), default_language=lang),
    }
