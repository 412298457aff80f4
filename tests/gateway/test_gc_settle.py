"""``idea24 serve`` settles the heap once it has started: what exists then is frozen out of the
collector's scans and young collections run less often (gateway/cli.py ``settle_heap``)."""

from __future__ import annotations

import gc

from gateway.cli import GC_THRESHOLDS, settle_heap


def test_settle_heap_freezes_what_exists_and_raises_the_young_threshold() -> None:
    before = gc.get_threshold()
    survivor = [object() for _ in range(10)]  # a container tracked by the collector
    try:
        settle_heap()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
        assert not any(survivor is o for o in gc.get_objects()), "frozen: no longer scanned"
        garbage: list[object] = []
        garbage.append(garbage)  # a cycle made after settling is still collected
        del garbage
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
