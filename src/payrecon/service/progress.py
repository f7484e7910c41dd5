"""How long work reports progress without knowing who shows it (the CLI draws Rich bars)."""

from __future__ import annotations

from typing import Literal, Protocol

Unit = Literal["bytes", "rows", "steps"]


class Observer(Protocol):
    def task(
        self, key: str, description: str, total: int | None = None, unit: Unit = "rows"
    ) -> None:
        """A unit of work starts; ``total`` counted in ``unit`` if known."""

    def advance(self, key: str, amount: int) -> None:
        """``amount`` more units of ``key`` are done."""

    def done(self, key: str) -> None:
        """``key`` has finished."""


class SilentObserver:
    """Reports nothing (library use, tests)."""

    def task(
        self, key: str, description: str, total: int | None = None, unit: Unit = "rows"
    ) -> None:
        return None

    def advance(self, key: str, amount: int) -> None:
        return None

    def done(self, key: str) -> None:
        return None
