"""What a handler works with: the backend, the subscriber, the language and the channel."""

from __future__ import annotations

from dataclasses import dataclass

from backend.protocol import Backend
from dialogs.catalogue import Texts, texts


@dataclass(frozen=True, slots=True)
class Ctx:
    backend: Backend
    msisdn: str
    lang: str
    channel: str  # "sms" | "ussd": written to the audit row of every change

    @property
    def t(self) -> Texts:
        return texts(self.lang)
