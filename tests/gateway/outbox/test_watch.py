"""The outbox watch: stalled only while replies wait and none leaves."""

from __future__ import annotations

import pytest

from gateway.outbox.watch import OutboxStalled, OutboxWatch


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_stalled_only_while_not_empty_and_not_moving() -> None:
    clock = Clock()
    watch = OutboxWatch(30.0, clock)
    assert watch.check(0, 0) == 0.0
    clock.now += 100
    assert watch.check(0, 0) == 0.0  # empty: idle, not stalled
    assert watch.check(5, 0) == 0.0  # replies wait from now on
    clock.now += 20
    assert watch.check(5, 0) == 20.0
    clock.now += 20
    with pytest.raises(OutboxStalled, match="5 replies waiting, none sent for 40 s"):
        watch.check(5, 0)
    assert watch.check(3, 2) == 0.0  # two left: moving again
    clock.now += 29
    assert watch.check(3, 2) == 29.0
    clock.now += 2
    with pytest.raises(OutboxStalled):
        watch.check(3, 2)
    assert watch.check(0, 2) == 0.0
