"""Stop a stream job between rounds on SIGINT/SIGTERM, instead of anywhere.

A ``KeyboardInterrupt`` raised in the middle of the matcher or of a sink would leave
state that must not be checkpointed. Inside :func:`stop_on_signals` the first signal
only sets a flag that the runtime reads between rounds; it then flushes the sinks and
writes a final checkpoint. A second signal raises ``KeyboardInterrupt`` at once, for a
job stuck in a retry loop (it then resumes from the previous checkpoint).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopFlag:
    """Callable: true once a stop signal arrived; ``signal`` says which."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __call__(self) -> bool:
        return self.signal is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum


@contextmanager
def stop_on_signals() -> Iterator[StopFlag]:
    """Install the handlers for the block (main thread only) and restore the old ones."""
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    for number in STOP_SIGNALS:
        signal.signal(number, flag._handle)
    try:
        yield flag
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
