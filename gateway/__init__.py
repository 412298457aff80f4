"""The SMPP link, the HTTP side and the ``idea24`` command."""

__version__ = "0.1.0"
