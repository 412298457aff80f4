"""The stored form of one subscriber's dialog: plain data, never a machine.

A record is the dialog name, the state name and a small JSON-able ``data`` dict. It is encoded
compactly (a USSD session must stay under 1 KiB) and written with its TTL in one store call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from backend.errors import Idea24Error


class RecordError(Idea24Error):
    """A stored record cannot be decoded (written by an incompatible version, or corrupted)."""


@dataclass(frozen=True, slots=True)
class DialogRecord:
    dialog: str
    state: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        return json.dumps(
            {"d": self.dialog, "s": self.state, "x": dict(self.data)},
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()

    @classmethod
    def decode(cls, raw: bytes | str) -> DialogRecord:
        try:
            obj = json.loads(raw)
            return cls(dialog=str(obj["d"]), state=str(obj["s"]), data=dict(obj.get("x") or {}))
        except (ValueError, KeyError, TypeError) as exc:
            raise RecordError(f"undecodable dialog record: {exc}") from exc
