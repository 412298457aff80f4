"""Replies on their way out: the outbox (memory, SQL, Redis), delivery tracking, receipt relay."""
