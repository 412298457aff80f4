"""The dialog engine: shared transitions machines, per-subscriber state, one turn at a time."""
