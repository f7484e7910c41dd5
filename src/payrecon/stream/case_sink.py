"""The case-store sink: alerts become provisional cases (see :mod:`payrecon.cases.realtime`).

Alerts are buffered and written on ``flush``, in one transaction, so a checkpoint taken
after a flush never runs ahead of the cases. ``matched`` outputs open nothing. Replayed
alerts (after a restart) carry the same ``alert_id`` and open nothing new.
"""

from __future__ import annotations

from payrecon.cases.realtime import open_stream_cases
from payrecon.cases.service import CaseService
from payrecon.core.stream import StreamOutput


class CaseSink:
    """Opens a provisional case per alert, in the configured case store."""

    def __init__(self, service: CaseService, *, channel: str, timezone: str) -> None:
        self.service = service
        self.channel = channel
        self.timezone = timezone
        self.opened = 0
        self._buffer: list[StreamOutput] = []

    def add(self, item: StreamOutput) -> None:
        if item.type != "matched":
            self._buffer.append(item)

    def flush(self) -> None:
        if self._buffer:
            self.opened += open_stream_cases(
                self.service, self._buffer, channel=self.channel, timezone=self.timezone
            )
            self._buffer = []

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.service.store.close()
