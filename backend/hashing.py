"""Keyed hashes of secrets (subscriber codes, account codes, temporary passwords).

A secret is never stored: only HMAC-SHA256 keyed with the server's secret key and bound to its
purpose and subject, so a leaked table cannot be brute-forced offline without the key and a hash
of one number's code cannot be replayed for another's. Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac


def keyed_hash(secret_key: bytes, purpose: str, subject: str, value: str) -> str:
    message = f"{purpose}\x00{subject}\x00{value}".encode()
    return hmac.new(secret_key, message, hashlib.sha256).hexdigest()


def matches(secret_key: bytes, purpose: str, subject: str, value: str, stored: str) -> bool:
    return hmac.compare_digest(keyed_hash(secret_key, purpose, subject, value), stored)
