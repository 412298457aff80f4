"""The error tree of idea24.

Every layer raises a specific subclass of :class:`Idea24Error`, so a caller catches exactly what it
can answer. Service errors carry a catalogue key and parameters: the dialogs word them for the
subscriber in their language, the HTTP API turns them into a JSON error. Messages never contain
secrets (passwords, subscriber codes).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


class Idea24Error(Exception):
    """Root of every error idea24 raises on purpose."""


class ConfigError(Idea24Error):
    """A setting is missing or wrong; the message names the key and how to fix it."""


class ServiceError(Idea24Error):
    """A domain rule refused an operation. ``key`` is a catalogue key for the subscriber's text."""

    key: str = "error.generic"

    def __init__(self, message: str = "", *, key: str | None = None, **params: Any) -> None:
        super().__init__(message or self.__class__.__name__)
        if key is not None:
            self.key = key
        self.params: dict[str, Any] = params


class NotFound(ServiceError):
    key = "error.not_found"


class InvalidInput(ServiceError):
    """Input breaks a rule; ``field`` and ``reason`` say which and why."""

    key = "error.invalid_input"

    def __init__(
        self, field: str, reason: str, message: str = "", *, key: str | None = None, **params: Any
    ) -> None:
        super().__init__(message or f"{field}: {reason}", key=key, **params)
        self.field = field
        self.reason = reason


class NotAllowed(ServiceError):
    key = "error.not_allowed"


class Conflict(ServiceError):
    key = "error.conflict"


class LockedOut(ServiceError):
    """Too many failed attempts; nothing is accepted until ``until``. ``scope`` names the code
    locked: a number's subscriber code, or a business account's code ("account")."""

    key = "error.locked_out"

    def __init__(
        self, until: datetime, message: str = "", *, scope: str = "number", **params: Any
    ) -> None:
        super().__init__(message or f"locked until {until.isoformat()}", **params)
        self.until = until
        self.scope = scope


class WrongCode(ServiceError):
    """A secret (subscriber code, temporary password) did not match; ``attempts_left`` remain.
    ``scope`` as for :class:`LockedOut`."""

    key = "error.wrong_code"

    def __init__(
        self, attempts_left: int, message: str = "", *, scope: str = "number", **params: Any
    ) -> None:
        super().__init__(message or f"wrong code, {attempts_left} attempts left", **params)
        self.attempts_left = attempts_left
        self.scope = scope


class NotAccountCode(ServiceError):
    """A change of a whole business account was confirmed with a number's own subscriber code:
    refused, and not counted as a wrong guess of the account code."""

    key = "error.not_account_code"


class RateLimited(ServiceError):
    """Too many requests in a window; try again after ``retry_after`` seconds."""

    key = "error.rate_limited"

    def __init__(self, retry_after: float, message: str = "", **params: Any) -> None:
        super().__init__(message or f"rate limited, retry after {retry_after:.0f}s", **params)
        self.retry_after = retry_after
