"""The ESME side of SMPP: the link (window, keep-alive, reconnect), the bind, throttle, inbound."""
