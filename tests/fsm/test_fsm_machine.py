"""The shared machine: fired per turn on a restored model, never built per message."""

from __future__ import annotations

import asyncio
from enum import Enum

import pytest

from fsm.machine import DialogMachine, InvalidTransition, Transition


class S(Enum):
    idle = "idle"
    confirm = "confirm"


TABLE = [
    Transition("ask", "idle", "confirm"),
    Transition("retry", "confirm", "confirm"),
    Transition("done", "*", "idle"),
]


@pytest.fixture(scope="module")
def machine() -> DialogMachine:
    return DialogMachine("t", S, TABLE, "idle")


async def test_fire_moves_by_the_table(machine: DialogMachine) -> None:
    assert await machine.fire("idle", "ask") == "confirm"
    assert await machine.fire("confirm", "retry") == "confirm"
    assert await machine.fire("confirm", "done") == "idle"


async def test_fire_refuses_what_the_table_does_not_allow(machine: DialogMachine) -> None:
    with pytest.raises(InvalidTransition):
        await machine.fire("idle", "retry")
    with pytest.raises(InvalidTransition):
        await machine.fire("idle", "to_confirm"), "no auto transitions"
    with pytest.raises(InvalidTransition):
        await machine.fire("nowhere", "done")


async def test_shared_machine_keeps_no_models(machine: DialogMachine) -> None:
    await asyncio.gather(*(machine.fire("idle", "ask") for _ in range(50)))
    assert machine._machine.models == []
    assert machine.describe()[:2] == ["idle --ask--> confirm", "confirm --retry--> confirm"]
