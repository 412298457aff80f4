"""The dialog engine: shared transitions machines, per-subscriber state in a store, one turn at a time."""
