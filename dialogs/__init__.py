"""The conversations: SMS commands and USSD menus, declared as data, texts in a catalogue."""

from __future__ import annotations

from typing import Any


def build_dialogs(settings: Any = None) -> dict[str, Any]:
    """The dialogs of both channels, keyed by channel, with TTLs and language from ``settings``."""
    from dialogs.sms import SmsDialog
    from dialogs.ussd import UssdDialog

    lang = getattr(settings, "language", "pl")
    return {
        "sms": SmsDialog(ttl=getattr(settings, "sms_dialog_timeout", 300.0), default_language=lang),
        "ussd": UssdDialog(ttl=getattr(settings, "ussd_timeout", 120.0), default_language=lang),
    }
