"""Exponential backoff for reconnecting sources and retrying sinks.

Deterministic (no jitter): one job talks to one server per connector, so there is no herd
to spread, and tests can reason about the delays.
"""

from __future__ import annotations

from dataclasses import dataclass

from payrecon.errors import ConfigError


@dataclass(frozen=True)
class Backoff:
    """Delays ``initial_s * factor**attempt``, capped at ``maximum_s``.

    >>> [Backoff(0.1, 2.0, 0.5).delay(n) for n in range(4)]
    [0.1, 0.2, 0.4, 0.5]
    """

    initial_s: float = 0.1
    factor: float = 2.0
    maximum_s: float = 5.0

    def __post_init__(self) -> None:
        if self.initial_s < 0 or self.factor < 1 or self.maximum_s < self.initial_s:
            raise ConfigError("backoff needs 0 <= initial <= maximum and a factor >= 1")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0 for the first retry)."""
        return min(self.maximum_s, self.initial_s * self.factor ** min(attempt, 64))
