"""An HTTP webhook sink: each output is POSTed as one JSON object (httpx).

The body is the output as in the JSON-lines file; the ``Idempotency-Key`` header carries
its ``alert_id``, because an output can be sent again after a crash (at least once) and
the receiver should treat a repeat as a no-op. Outputs are buffered and sent in order on
:meth:`WebhookSink.flush` (the runtime flushes when idle, every few hundred ms under load,
and before each checkpoint), or when ``max_buffered`` are waiting.

A 2xx answer delivers the output. Connection errors, timeouts, 408, 425, 429 and 5xx are
retried with backoff; after ``attempts`` tries, or on any other status, ``flush`` raises a
:class:`RunError`: the job stops without a new checkpoint, and a restart sends again from
the last one. Retrying blocks the job, which is the backpressure a slow receiver needs.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

import httpx

from payrecon.core.stream import StreamOutput
from payrecon.errors import ConfigError, RunError
from payrecon.stream.backoff import Backoff
from payrecon.stream.sinks import output_record

RETRY_STATUSES = frozenset({408, 425, 429})


def _retryable(status: int) -> bool:
    return status in RETRY_STATUSES or status >= 500


class WebhookSink:
    """POSTs outputs to ``url``; see the module docstring for delivery and retries."""

    def __init__(
        self,
        url: str,
        *,
        attempts: int = 5,
        backoff: Backoff | None = None,
        timeout_s: float = 10.0,
        max_buffered: int = 1000,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"webhook URL must start with http:// or https://, not {url!r}")
        if attempts < 1 or max_buffered < 1:
            raise ConfigError("webhook attempts and buffer size must be at least 1")
        self.url = url
        self.attempts = attempts
        self.backoff = backoff or Backoff(0.2, 2.0, 5.0)
        self.max_buffered = max_buffered
        self.sleep = sleep
        self._client = client or httpx.Client(timeout=timeout_s)
        self._pending: deque[dict[str, Any]] = deque()

    def add(self, item: StreamOutput) -> None:
        """Buffer one output; sends the buffer when it is full."""
        self._pending.append(output_record(item))
        if len(self._pending) >= self.max_buffered:
            self.flush()

    def flush(self) -> None:
        """Send every buffered output in order; raise when one cannot be delivered."""
        while self._pending:
            self._post(self._pending[0])
            self._pending.popleft()

    def _post(self, record: dict[str, Any]) -> None:
        problem = ""
        for attempt in range(self.attempts):
            if attempt:
                self.sleep(self.backoff.delay(attempt - 1))
            try:
                response = self._client.post(
                    self.url, json=record, headers={"Idempotency-Key": str(record["alert_id"])}
                )
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
                continue
            if response.is_success:
                return
            problem = f"HTTP {response.status_code}"
            if not _retryable(response.status_code):
                break
        raise RunError(
            f"webhook {self.url} did not take output {record['alert_id']}"
            f" after {attempt + 1} attempt(s): {problem}"
        )

    def close(self) -> None:
        """Close the connection pool; unsent outputs are replayed from the checkpoint."""
        self._client.close()
