"""The dialogs' own error: input a subscriber can correct, worded by a catalogue key."""

from __future__ import annotations

from typing import Any

from backend.errors import Idea24Error


class DialogInputError(Idea24Error):
    """The subscriber's input is wrong; ``key`` names the catalogue text saying what and how."""

    def __init__(self, key: str, **params: Any) -> None:
        super().__init__(key)
        self.key = key
        self.params = params
