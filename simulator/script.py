"""Conversation scripts: what a developer did on the handsets, as JSON that can be replayed.

A script names a handset and lists steps, each with one action::

    {"name": "usage over SMS", "msisdn": "48600000001",
     "steps": [{"send": "PAKIET"}, {"expect": "minuty \\d+/120"},
               {"dial": "*100#"}, {"expect": "1 Konto", "end": false},
               {"answer": "2"}, {"expect": "Pakiet"}]}

- ``send``: an SMS from the handset (to ``to``, default the short code);
- ``dial``: a USSD code such as ``*100#``; ``answer``: a reply to the open USSD menu;
- ``expect``: a regular expression (Python ``re.search``, ``.`` matching newlines too) the
  next thing the handset receives must match: the USSD screen when the step before it on that
  handset dialled or answered, else the next SMS. ``end`` (USSD only) says whether the session
  must have ended. ``within`` is the seconds to wait (default 15): for the reply on ``expect``,
  ``dial`` and ``answer``, for the server's acknowledgement on ``send``.

Any step may name another ``msisdn``, so one script can drive several handsets.
:func:`record` turns a handset's history (the simulator's :class:`HandsetMessage` list) into a
script whose expectations are the texts seen, escaped, with numbers loosened so dates, amounts
and counters do not pin the script to the day it was recorded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.store import HandsetMessage
from simulator.ussd import is_dial_string

ACTIONS = ("send", "expect", "dial", "answer")
DEFAULT_WITHIN = 15.0
#: A run of letters and digits holding a digit and longer than one character (a date, an
#: amount, a reference, a password): recorded as ``\w+``. A lone digit (a menu number) stays.
_VARIABLE = re.compile(r"\w*\d\w*")
_SPECIAL = re.compile(r"[.^$*+?{}\[\]\\|()]")


class ScriptError(ValueError):
    """The script is not valid JSON or a step is malformed; the message names the step."""


@dataclass(frozen=True, slots=True)
class Step:
    action: str
    value: str
    msisdn: str
    to: str | None = None
    end: bool | None = None
    within: float = DEFAULT_WITHIN

    def describe(self) -> str:
        """One line for reports: ``48600000001 send "PAKIET"``."""
        if self.action == "expect":
            value = "/" + self.value.replace("\n", "\\n") + "/"
        else:
            value = json.dumps(self.value, ensure_ascii=False)
        extra = "" if self.end is None else f" (session {'ended' if self.end else 'open'})"
        return f"{self.msisdn} {self.action} {value}{extra}"

    def as_dict(self, default_msisdn: str) -> dict[str, Any]:
        out: dict[str, Any] = {self.action: self.value}
        if self.msisdn != default_msisdn:
            out["msisdn"] = self.msisdn
        if self.to is not None:
            out["to"] = self.to
        if self.end is not None:
            out["end"] = self.end
        if self.within != DEFAULT_WITHIN:
            out["within"] = self.within
        return out


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    msisdn: str
    steps: tuple[Step, ...]

    @property
    def handsets(self) -> list[str]:
        return sorted({s.msisdn for s in self.steps})

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "msisdn": self.msisdn,
            "steps": [s.as_dict(self.msisdn) for s in self.steps],
        }


def load(path: str | Path) -> Script:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ScriptError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScriptError(f"{path}: not JSON: {exc}") from exc
    return parse(data, default_name=Path(path).stem)


def parse(data: Any, *, default_name: str = "script") -> Script:
    """Check a decoded script; :class:`ScriptError` names the first bad step."""
    if not isinstance(data, Mapping):
        raise ScriptError("a script is a JSON object with msisdn and steps")
    msisdn = _number(data.get("msisdn"), "msisdn")
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ScriptError("steps: expected a non-empty list")
    steps = tuple(_step(i, raw, msisdn) for i, raw in enumerate(raw_steps, 1))
    return Script(str(data.get("name") or default_name), msisdn, steps)


def _step(index: int, raw: Any, msisdn: str) -> Step:
    where = f"step {index}"
    if not isinstance(raw, Mapping):
        raise ScriptError(f'{where}: expected an object such as {{"send": "PAKIET"}}')
    actions = [a for a in ACTIONS if a in raw]
    if len(actions) != 1:
        raise ScriptError(f"{where}: expected exactly one of {', '.join(ACTIONS)}")
    action = actions[0]
    value = raw[action]
    if not isinstance(value, str) or not value:
        raise ScriptError(f"{where}: {action}: expected a non-empty string")
    unknown = set(raw) - {action, "msisdn", "to", "end", "within"}
    if unknown:
        raise ScriptError(f"{where}: unknown keys {sorted(unknown)}")
    if action == "expect":
        try:
            re.compile(value)
        except re.error as exc:
            raise ScriptError(f"{where}: expect: not a regular expression: {exc}") from exc
    if action == "dial" and not is_dial_string(value):
        raise ScriptError(f"{where}: dial: expected a code such as *100#, got {value!r}")
    end = raw.get("end")
    if end is not None and (action != "expect" or not isinstance(end, bool)):
        raise ScriptError(f"{where}: end: true or false, on an expect step only")
    within = raw.get("within", DEFAULT_WITHIN)
    if isinstance(within, bool) or not isinstance(within, int | float) or not 0 < within <= 300:
        raise ScriptError(f"{where}: within: seconds, more than 0 and at most 300")
    to = raw.get("to")
    if to is not None and (action != "send" or not isinstance(to, str) or not to):
        raise ScriptError(f"{where}: to: a number, on a send step only")
    number = _number(raw["msisdn"], f"{where}: msisdn") if "msisdn" in raw else msisdn
    return Step(action, value, number, to, end, float(within))


def _number(value: Any, key: str) -> str:
    text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""
    digits = text.strip().lstrip("+")
    if not digits.isdigit() or not 8 <= len(digits) <= 15:
        raise ScriptError(f"{key}: expected a phone number such as 48600000001")
    return digits


def expectation(text: str) -> str:
    """A pattern matching ``text`` with its variable parts (numbers and codes) loosened."""
    out, last = [], 0
    for found in _VARIABLE.finditer(text):
        token = found.group()
        out.append(_escape(text[last : found.start()]))
        out.append(_escape(token) if len(token) == 1 else r"\w+")
        last = found.end()
    out.append(_escape(text[last:]))
    return "^" + "".join(out) + "$"


def _escape(text: str) -> str:
    """Like :func:`re.escape` but leaving spaces and newlines as they are (readable JSON)."""
    return _SPECIAL.sub(r"\\\g<0>", text)


def record(
    messages: Iterable[HandsetMessage],
    *,
    name: str = "recorded",
    short_code: str | None = None,
) -> Script:
    """A script replaying ``messages`` (oldest first, any number of handsets)."""
    steps: list[Step] = []
    for m in messages:
        if m.kind == "ussd" and m.direction == "mt" and not m.text:
            continue  # the session timed out: nothing reached the screen
        if m.direction == "mo":
            if m.kind == "sms":
                to = None if m.peer == short_code else m.peer
                steps.append(Step("send", m.text, m.msisdn, to=to))
            else:
                action = "dial" if is_dial_string(m.text) else "answer"
                steps.append(Step(action, m.text, m.msisdn))
        else:
            end = bool(m.end) if m.kind == "ussd" else None
            steps.append(Step("expect", expectation(m.text), m.msisdn, end=end))
    if not steps:
        raise ScriptError("nothing to record: no message since the recording started")
    first = steps[0].msisdn
    return Script(name, first, tuple(steps))
