"""TLS contexts for the three encrypted links, and what a TLS failure means to an operator.

- :func:`client_context`: the ESME's side of ``smpps://`` (the SMSC's certificate verified
  against ``ca`` or the system store, host name checked, TLS 1.2 or newer, an optional client
  certificate for mutual TLS). The link builds one per connection attempt, so a renewed
  certificate or CA file is picked up on the next reconnect without a restart.
- :func:`server_context`: a listener's side (HTTPS for ``idea24 serve``, the simulator's
  ``--smpps`` port), optionally requiring client certificates signed by ``client_ca``;
  :func:`reloading_server_context` is the same, re-reading its files when they change.
- :func:`explain`: an ``ssl`` exception as a short reason (a metric label) and a sentence.

Nothing here falls back to clear text: a context that cannot be built is an error.
"""

from __future__ import annotations

import logging
import os
import ssl
from pathlib import Path

from backend.errors import ConfigError

log = logging.getLogger(__name__)

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2


class TlsFilesError(ConfigError):
    """A certificate, key or CA file is missing, unreadable or not what it should be."""


class ClosedAfterHandshake(ConnectionError):
    """The server closed the connection after the handshake without a byte of SMPP (no
    bind_resp). With TLS 1.3 a server checks the client certificate after the client has
    finished its handshake, and many (asyncio's among them) then close without an alert the
    client could read: on every attempt, that is a refused certificate; once, an SMSC restart."""


def client_context(ca: str = "", cert: str = "", key: str = "") -> ssl.SSLContext:
    """Verify the server against ``ca`` (PEM bundle; empty: the system store); present
    ``cert``/``key`` when given (``key`` empty: the key is in ``cert``)."""
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca or None)
    except (OSError, ssl.SSLError) as exc:
        raise TlsFilesError(_unusable("ca", ca, exc)) from exc
    ctx.minimum_version = MINIMUM_VERSION
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    if key and not cert:
        raise TlsFilesError("key is set without cert: mutual TLS needs both")
    if cert:
        _load_chain(ctx, cert, key)
    return ctx


def server_context(cert: str, key: str = "", client_ca: str = "") -> ssl.SSLContext:
    """A listener presenting ``cert``/``key``; with ``client_ca`` every client must present a
    certificate signed by it (mutual TLS)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = MINIMUM_VERSION
    _load_chain(ctx, cert, key)
    if client_ca:
        try:
            ctx.load_verify_locations(cafile=client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise TlsFilesError(_unusable("client ca", client_ca, exc)) from exc
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def reloading_server_context(
    cert: str, key: str = "", client_ca: str = "", *, named: str = ""
) -> ssl.SSLContext:
    """:func:`server_context` that picks up renewed files without a restart; ``named``: the
    settings or flags that gave the files, put in front of a :class:`ConfigError`'s message.

    At each handshake (the SNI callback, which OpenSSL calls with or without a server name) the
    files' size and modification time are compared with those last loaded: one ``stat`` per
    file. When they changed, a new context is built and the connection switched to it; a
    renewal that cannot be loaded (half written, wrong key) is logged and the last good
    certificate stays in use.
    """
    try:
        listener = server_context(cert, key, client_ca)
    except ConfigError as exc:
        if not named:
            raise
        raise ConfigError(f"{named}: {exc}") from exc
    listener.sni_callback = _Reloader(listener, cert, key, client_ca).on_handshake
    return listener


class _Reloader:
    """The state behind :func:`reloading_server_context`: the files' last stamp and the
    context built from them."""

    def __init__(self, listener: ssl.SSLContext, cert: str, key: str, client_ca: str) -> None:
        self.listener = self.context = listener
        self.args = (cert, key, client_ca)
        self.files = tuple(path for path in self.args if path)
        self.stamp = _stamp(self.files)

    def on_handshake(self, sock: ssl.SSLObject, _name: str | None, _ctx: ssl.SSLContext) -> None:
        stamp = _stamp(self.files)
        if stamp != self.stamp:
            self.stamp = stamp
            try:
                self.context = server_context(*self.args)
                log.info("tls certificate reloaded", extra={"cert": self.args[0]})
            except TlsFilesError as exc:
                log.error("tls certificate not reloaded, the previous one stays: %s", exc)
        if self.context is not self.listener:
            sock.context = self.context


def _stamp(files: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    stamps = []
    for path in files:
        try:
            st = os.stat(path)
        except OSError:
            stamps.append((-1, -1))
        else:
            stamps.append((st.st_mtime_ns, st.st_size))
    return tuple(stamps)


def _load_chain(ctx: ssl.SSLContext, cert: str, key: str) -> None:
    for what, path in (("cert", cert), ("key", key)):
        if path and not Path(path).is_file():
            raise TlsFilesError(f"{what} file {path} does not exist")
    try:
        ctx.load_cert_chain(cert, key or None)
    except (OSError, ssl.SSLError) as exc:
        raise TlsFilesError(
            f"cert {cert} / key {key or cert}: not a PEM certificate and its private key"
            f" ({_first_line(exc)})"
        ) from exc


def _unusable(what: str, path: str, exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"{what} file {path} does not exist"
    return f"{what} file {path} is not a readable PEM bundle ({_first_line(exc)})"


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or str(exc)
    return (str(text).strip().splitlines() or [type(exc).__name__])[0]


#: Alerts a server sends when it wanted a client certificate and got none or one it refuses.
_CLIENT_CERT_ALERTS = (
    "CERTIFICATE_REQUIRED",
    "BAD_CERTIFICATE",
    "UNKNOWN_CA",
    "CERTIFICATE_UNKNOWN",
)


def explain(exc: BaseException) -> tuple[str, str]:
    """``(reason, sentence)`` for a TLS failure on the client side.

    Reasons (the ``reason`` label of ``idea24_smpp_tls_failures_total``): ``certificate`` —
    the peer's certificate did not verify (unknown CA, expired, wrong host name); ``refused`` —
    the peer refused ours with an alert (none given, or not signed by a CA it trusts);
    ``closed`` — the peer closed the connection after the handshake without answering the bind
    (:class:`ClosedAfterHandshake`); ``files`` — our own certificate, key or CA file is
    unusable; ``handshake`` — anything else (no TLS on that port, no common protocol version).
    """
    if isinstance(exc, TlsFilesError):
        return "files", str(exc)
    if isinstance(exc, ClosedAfterHandshake):
        return "closed", (
            "the SMSC closed the connection after the TLS handshake without answering the"
            " bind: if this repeats, it refuses our client certificate or wants one (set cert="
            " and key=), or does not serve this address"
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = exc.verify_message or _first_line(exc)
        return "certificate", f"the SMSC's certificate did not verify: {detail}"
    reason = str(getattr(exc, "reason", "") or "")
    if any(alert in reason.upper() for alert in _CLIENT_CERT_ALERTS):
        return "refused", (
            f"the SMSC refused our client certificate ({reason}): set cert= and key= to a"
            " certificate its CA trusts"
        )
    if "HANDSHAKE_FAILURE" in reason.upper():  # TLS 1.2 servers say so when no cert came too
        return "refused", (
            f"the SMSC ended the handshake ({reason}): it wants a client certificate (set cert="
            " and key=), or it shares no protocol version or cipher with us"
        )
    if "WRONG_VERSION_NUMBER" in reason.upper() or "RECORD_LAYER" in reason.upper():
        return "handshake", f"no TLS on that port ({reason}): is it the clear-text SMPP port?"
    return "handshake", f"TLS handshake failed: {reason or _first_line(exc)}"
