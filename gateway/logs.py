"""Structured logging: JSON lines when not on a terminal, the subscriber's number masked.

Callers pass structured fields with ``extra={"msisdn": ..., ...}``; the formatter masks any field
named like a phone number and drops any field named like a secret, so a handler cannot leak a
temporary password or subscriber code by logging its context.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

MSISDN_FIELDS = frozenset(
    {"msisdn", "source", "destination", "source_addr", "destination_addr", "phone"}
)
SECRET_FIELDS = frozenset(
    {
        "password",
        "temp_password",
        "subscriber_code",
        "code",
        "api_key",
        "secret_key",
        "secret",
        "token",
    }
)
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
}
_DIGITS = re.compile(r"(?<!\d)(\+?\d{2})\d{5,9}(\d{2})(?!\d)")


def mask_msisdn(value: object) -> str:
    """``48600000001`` → ``4860*****01``: enough to correlate, not enough to identify."""
    text = str(value)
    if len(text) <= 4:
        return "*" * len(text)
    keep = 4 if len(text) > 8 else 2
    return text[:keep] + "*" * (len(text) - keep - 2) + text[-2:]


def mask_numbers_in(text: str) -> str:
    """Mask anything that looks like a phone number inside free text (log messages)."""
    return _DIGITS.sub(
        lambda m: m.group(1) + "*" * (len(m.group(0)) - len(m.group(1)) - 2) + m.group(2), text
    )


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.__dict__.items():
        if key in _STANDARD or key.startswith("_"):
            continue
        if key in SECRET_FIELDS:
            continue
        out[key] = mask_msisdn(value) if key in MSISDN_FIELDS and value is not None else value
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": mask_numbers_in(record.getMessage()),
        }
        entry.update(record_fields(record))
        if record.exc_info:
            entry["exc"] = mask_numbers_in(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        fields = " ".join(f"{k}={v}" for k, v in record_fields(record).items())
        line = f"{ts} {record.levelname:<7} {record.name}: {mask_numbers_in(record.getMessage())}"
        if fields:
            line += f"  {fields}"
        if record.exc_info:
            line += "\n" + mask_numbers_in(self.formatException(record.exc_info))
        return line


def setup_logging(level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure the root logger once, from the CLI (never at import)."""
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if use_json else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiohttp.access", "sqlalchemy.engine", "transitions", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
