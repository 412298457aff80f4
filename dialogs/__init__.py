"""The conversations: SMS commands and USSD menus, declared as data, texts in a catalogue."""

from __future__ import annotations

from backend.clock import Clock
from dialogs.settings import DialogSettings
from dialogs.sms import SmsDialog
from dialogs.ussd import UssdDialog
from fsm.runtime import Dialog

__all__ = ["DialogSettings", "build_dialogs"]


def build_dialogs(
    settings: DialogSettings | None = None, clock: Clock | None = None
) -> dict[str, Dialog]:
    """The dialogs of both channels, keyed by channel, with TTLs and language from ``settings``;
    ``clock`` (the system clock when None) dates pending changes."""
    s = settings or DialogSettings()
    return {
        "sms": SmsDialog(s.sms_dialog_timeout, s.language, clock, s.sms_pending_valid, s.sms_parts),
        "ussd": UssdDialog(ttl=s.ussd_timeout, default_language=s.language),
    }
