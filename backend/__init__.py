"""The subscriber domain: SQLAlchemy 2 async models and channel-independent services."""
