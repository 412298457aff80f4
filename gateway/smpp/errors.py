"""SMPP protocol errors, carrying the command_status to answer with (as h11 carries a hint)."""

from __future__ import annotations

from backend.errors import Idea24Error


class ProtocolError(Idea24Error):
    """A PDU or byte stream broke SMPP 3.4.

    ``status`` is the command_status to answer with, ``sequence`` and ``command_id`` identify the
    offending PDU when they could be read (0 otherwise). ``fatal`` means framing is lost and the
    connection must be closed after answering.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        sequence: int = 0,
        command_id: int = 0,
        fatal: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.sequence = sequence
        self.command_id = command_id
        self.fatal = fatal


class LocalProtocolError(ProtocolError):
    """We were asked to send what SMPP does not allow (e.g. a field longer than its maximum)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something SMPP does not allow."""
