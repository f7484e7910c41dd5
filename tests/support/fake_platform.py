"""A fake payment platform that speaks payrecon's action-webhook protocol over real HTTP.

It is the receiving end described in :mod:`payrecon.cases.executor`, implemented
independently (its own HMAC check, not payrecon's) so that a change to one side of the
protocol shows up as a test failure::

    with FakePlatform(secret=b"s3cret") as platform:
        executor = WebhookExecutor(platform.url, b"s3cret", sleep=sleeps.append)
        platform.fail_next(2, status=503)       # then succeed
        result = executor.execute(request)
        assert result.ok and len(platform.moves) == 1

Each request is checked in this order and answered by the first rule that applies:

1. A scripted fault queued with :meth:`FakePlatform.fail_next` or
   :meth:`FakePlatform.drop_next` answers that status or closes the connection without
   answering, before anything is checked or moved (an outage in front of the platform).
2. Wrong path → 404; Content-Type not JSON → 415; missing, stale (beyond
   ``tolerance_s``) or wrong timestamp/signature → 401; a body that is not canonical JSON
   or a missing ``Idempotency-Key`` (or one that differs from the body's) → 400.
3. A key seen before: the same body gets the first answer again (with the header
   ``Idempotent-Replayed: true``) and moves no money; a different body → 422.
4. A new key: a refusal queued with :meth:`FakePlatform.reject_next` is answered and
   remembered as the key's answer; otherwise the body is recorded in :attr:`moves` and
   200 with ``{"status": "executed", "reference": "fake-<n>", ...}`` is answered.
   ``drop_next(after_move=True)`` carries the request out, then drops the answer (the
   lost-response case that idempotency keys exist for).

Scripted behaviours apply to the next requests in arrival order, one per request,
whether or not those requests are valid. :attr:`requests` records every request,
:attr:`moves` every money movement and :attr:`errors` any exception in the server.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal

DEFAULT_SECRET = b"fake-platform-secret"
DEFAULT_PATH = "/payrecon/actions"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as it arrived; header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Answer:
    """What the platform sends back; ``None`` in its place means "drop the connection"."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, status: int, document: Any, *headers: tuple[str, str]) -> Answer:
        return cls(status, json.dumps(document, ensure_ascii=False).encode(), headers)


@dataclass(frozen=True)
class _Fault:
    kind: Literal["fail", "drop", "reject", "drop_answer"]
    answer: Answer | None = None


@dataclass(frozen=True)
class _Remembered:
    document: Any
    answer: Answer


class FakePlatform:
    """A threaded HTTP server on 127.0.0.1 (ephemeral port) acting as the platform."""

    def __init__(
        self,
        secret: bytes | str = DEFAULT_SECRET,
        *,
        path: str = DEFAULT_PATH,
        tolerance_s: int = 300,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.secret = secret.encode() if isinstance(secret, str) else secret
        self.path = path
        self.tolerance_s = tolerance_s
        self._clock = clock
        self._lock = threading.Lock()
        self._faults: deque[_Fault] = deque()
        self._answers: dict[str, _Remembered] = {}
        self._requests: list[RecordedRequest] = []
        self._moves: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> FakePlatform:
        self._server = _Server(("127.0.0.1", 0), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
        self._server = self._thread = None

    @property
    def url(self) -> str:
        """The URL to POST actions to."""
        if self._server is None:
            raise RuntimeError("FakePlatform is not running; use it as a context manager")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self.path}"

    # -- what happened ---------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def moves(self) -> list[dict[str, Any]]:
        """The parsed body of every action actually carried out (a copy)."""
        with self._lock:
            return list(self._moves)

    # -- scripting failures ----------------------------------------------------------

    def fail_next(
        self, n: int = 1, status: int = 503, *, retry_after: float | None = None, body: str = ""
    ) -> None:
        """Answer ``status`` to the next ``n`` requests without looking at them."""
        headers = () if retry_after is None else (("Retry-After", f"{retry_after:g}"),)
        answer = Answer(status, body.encode(), headers)
        self._script(n, _Fault("fail", answer))

    def drop_next(self, n: int = 1, *, after_move: bool = False) -> None:
        """Close the connection of the next ``n`` requests without answering.

        With ``after_move`` the request is first carried out as usual (money moves, the
        answer is remembered for its key) and only the answer is lost.
        """
        self._script(n, _Fault("drop_answer" if after_move else "drop"))

    def reject_next(self, status: int = 400, body: str = '{"error": "refused"}') -> None:
        """Refuse the next valid new action permanently with ``status`` and ``body``."""
        self._script(1, _Fault("reject", Answer(status, body.encode())))

    def _script(self, n: int, fault: _Fault) -> None:
        with self._lock:
            self._faults.extend([fault] * n)

    # -- the platform's logic, callable without HTTP ----------------------------------

    def handle(self, request: RecordedRequest) -> Answer | None:
        """Answer one request; None means close the connection without answering."""
        with self._lock:
            self._requests.append(request)
            fault = self._faults.popleft() if self._faults else None
            if fault is not None and fault.kind in ("fail", "drop"):
                return fault.answer
            refusal = self._refusal(request)
            if refusal is not None:
                return refusal
            answer = self._carry_out(request, fault)
            return None if fault is not None and fault.kind == "drop_answer" else answer

    def _refusal(self, request: RecordedRequest) -> Answer | None:
        if request.path != self.path:
            return Answer.of(404, {"error": f"no such path {request.path}"})
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return Answer.of(415, {"error": "expected application/json"})
        if not self._authentic(request):
            return Answer.of(401, {"error": "bad signature or timestamp"})
        return self._malformed(request)

    def _authentic(self, request: RecordedRequest) -> bool:
        timestamp = request.headers.get("x-payrecon-timestamp", "")
        signature = request.headers.get("x-payrecon-signature", "")
        if not (timestamp.isascii() and timestamp.isdigit()):
            return False
        if abs(self._clock() - int(timestamp)) > self.tolerance_s:
            return False
        message = timestamp.encode() + b"." + request.body
        expected = "sha256=" + hmac.new(self.secret, message, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected.encode(), signature.encode())

    def _malformed(self, request: RecordedRequest) -> Answer | None:
        try:
            document = request.json()
        except ValueError:
            return Answer.of(400, {"error": "body is not JSON"})
        canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        if canonical.encode() != request.body:
            return Answer.of(400, {"error": "body is not canonical JSON"})
        key = request.idempotency_key
        if not key or document.get("idempotency_key", key) != key:
            return Answer.of(400, {"error": "missing or inconsistent Idempotency-Key"})
        return None

    def _carry_out(self, request: RecordedRequest, fault: _Fault | None) -> Answer:
        key, document = request.idempotency_key or "", request.json()
        remembered = self._answers.get(key)
        if remembered is not None:
            if remembered.document != document:
                return Answer.of(422, {"error": f"key {key} was used for a different action"})
            replayed = remembered.answer
            return Answer(replayed.status, replayed.body, (("Idempotent-Replayed", "true"),))
        if fault is not None and fault.kind == "reject" and fault.answer is not None:
            answer = fault.answer
        else:
            self._moves.append(document)
            reference = f"fake-{len(self._moves)}"
            answer = Answer.of(
                200, {"status": "executed", "reference": reference, "idempotency_key": key}
            )
        self._answers[key] = _Remembered(document, answer)
        return answer


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], platform: FakePlatform) -> None:
        self.platform = platform
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if error is not None:
            self.platform.errors.append(error)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real platform would
    server: _Server

    def do_POST(self) -> None:
        self._respond(self.server.platform.handle(self._recorded()))

    def _recorded(self) -> RecordedRequest:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        headers = {name.lower(): value for name, value in self.headers.items()}
        return RecordedRequest(self.command, self.path, headers, body)

    def _respond(self, answer: Answer | None) -> None:
        if answer is None:
            self.close_connection = True
            return
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""
