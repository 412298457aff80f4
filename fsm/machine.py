"""Shared dialog machines: one ``transitions.AsyncMachine`` per dialog, built once at start-up.

The machine holds no subscriber: it is built with ``model=None`` and ``auto_transitions=False``
from a transition table, and each turn restores a plain :class:`DialogModel` at the state loaded
from the store and fires the event straight on the shared machine
(``machine.events[name].trigger(model)``). That skips binding trigger methods onto a model per turn
(``add_model``/``remove_model``), which costs more on the hot path (about 1.5x measured); see
``tests/fsm/test_machine.py::test_fire_is_cheaper_than_add_model``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from transitions.core import MachineError
from transitions.extensions.asyncio import AsyncMachine

from backend.errors import Idea24Error


class InvalidTransition(Idea24Error):
    """A dialog fired an event its table does not allow from the current state (a dialog bug)."""


@dataclass(frozen=True, slots=True)
class Transition:
    """A table row: ``trigger`` moves ``source`` (one, some or ``*``) to ``dest``."""

    trigger: str
    source: str | tuple[str, ...]
    dest: str

    def as_dict(self) -> dict[str, Any]:
        source = list(self.source) if isinstance(self.source, tuple) else self.source
        return {"trigger": self.trigger, "source": source, "dest": self.dest}


class DialogModel:
    """The per-turn stand-in for a subscriber: only the state, restored from the store."""

    state: Any  # set by transitions; annotation only, so nothing is bound per turn


class DialogMachine:
    """A named transition table over ``states`` (names or an Enum), fired by state name."""

    def __init__(
        self,
        name: str,
        states: Sequence[str] | type[Enum],
        transitions: Iterable[Transition],
        initial: str,
    ) -> None:
        self.name = name
        self.transitions = tuple(transitions)
        state_list: list[Any] = list(states)
        self.initial = initial
        self._machine = AsyncMachine(
            model=None,
            states=state_list,
            transitions=[t.as_dict() for t in self.transitions],
            initial=self._state_value(state_list, initial),
            auto_transitions=False,
            name=name,
        )
        self.states: tuple[str, ...] = tuple(self._machine.states)

    @staticmethod
    def _state_value(states: list[Any], name: str) -> Any:
        for s in states:
            if (s.name if isinstance(s, Enum) else s) == name:
                return s
        raise ValueError(f"initial state {name!r} is not a state")

    def has_state(self, name: str) -> bool:
        return name in self._machine.states

    async def fire(self, state: str, trigger: str) -> str:
        """The state reached from ``state`` by ``trigger``; raises ``InvalidTransition``."""
        event = self._machine.events.get(trigger)
        if event is None or not self.has_state(state):
            raise InvalidTransition(f"{self.name}: no event {trigger!r} or state {state!r}")
        model = DialogModel()
        model.state = self._machine.get_state(state).value
        try:
            moved = await event.trigger(model)
        except MachineError as exc:
            raise InvalidTransition(f"{self.name}: {trigger!r} not allowed from {state!r}") from exc
        if not moved:
            raise InvalidTransition(f"{self.name}: {trigger!r} refused in {state!r}")
        return str(self._machine.get_state(model.state).name)

    def describe(self) -> list[str]:
        """The table as ``source --trigger--> dest`` lines (for docs and diagrams)."""
        lines = []
        for t in self.transitions:
            sources = t.source if isinstance(t.source, tuple) else (t.source,)
            lines += [f"{s} --{t.trigger}--> {t.dest}" for s in sources]
        return lines
