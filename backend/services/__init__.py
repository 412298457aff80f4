"""Service functions behind :class:`backend.api.Backend`, one module per area of the portal."""
