"""Carry out an approved action against the payment platform, moving money at most once.

An approved money-moving action (补单 supplement order, 退款 refund, 调账 adjust, 核销
write-off, ...) is handed to an :class:`Executor` as an :class:`ActionRequest`. Two
executors exist: :class:`WebhookExecutor` calls the platform over HTTP and
:class:`CallableExecutor` calls a Python function. Both answer with an
:class:`ExecutionResult`; neither raises for a refusal or an outage, only for bad
configuration (:class:`~payrecon.errors.ConfigError`).

Webhook protocol (what the platform must implement)
---------------------------------------------------
Every execution is one ``POST`` to the configured URL::

    POST <url>
    Content-Type: application/json
    Idempotency-Key: <key>
    X-Payrecon-Timestamp: <unix seconds, decimal digits>
    X-Payrecon-Signature: sha256=<lowercase hex HMAC-SHA256(secret, timestamp + "." + body)>

    {"action_id":7,"amount_minor":1250,"approved_by":"li","case_id":3,...}

* The body is canonical JSON: UTF-8 (non-ASCII characters are not escaped), keys
  sorted, separators ``,`` and ``:`` with no spaces. Its fields are those of
  :meth:`ActionRequest.body`: ``action_id``, ``idempotency_key``, ``case_id``,
  ``kind`` (``supplement_order``, ``refund``, ``adjust``, ``write_off``, ...),
  ``amount_minor`` (an integer in minor units, e.g. fen, or null), ``currency``,
  ``channel``, ``merchant_id``, ``order_id``, ``reason``, ``proposed_by``,
  ``approved_by`` and ``payload`` (an object with both sides' records etc.).
* To authenticate, compute HMAC-SHA256 with the shared secret over the bytes
  ``timestamp + "." + body`` exactly as received, compare it with the signature
  header in constant time, and refuse a timestamp more than 5 minutes from your
  clock (replay protection). :func:`verify_signature` does all three.
* Deduplicate on ``Idempotency-Key`` (it is also in the body). The key is stable for
  an action across retries and restarts: the first request with a key carries out
  the action; every later request with the same key must move no money and return
  the first answer again. A repeat whose body differs from the first should be
  refused with 422.
* Answer 2xx when the action is done (or was already done); the body, JSON
  preferred, is recorded in the case's history. Answer 4xx to refuse permanently
  (payrecon records the refusal and does not retry). Answer 429 (optionally with
  ``Retry-After: <seconds>``) or 5xx for a temporary failure.

payrecon retries connection errors, timeouts, 429 and 5xx up to ``max_attempts``
times with exponential backoff and jitter: the wait before attempt ``n + 1`` is
uniform in ``[d/2, d]`` with ``d = min(backoff_max_s, backoff_base_s * 2**(n-1))``,
or the ``Retry-After`` seconds of a 429/503 (capped at ``backoff_max_s``). Every
retry sends the same key and byte-identical body; only the timestamp and signature
are recomputed. Other 4xx and 3xx answers are never retried, and redirects are not
followed. A result that is not ok but ``retryable`` may be executed again later
with the same request; the platform's deduplication keeps that safe.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import httpx

from payrecon.errors import ConfigError, InputError

RESPONSE_LIMIT = 4000
"""Characters of the platform's answer kept in an :class:`ExecutionResult`."""

SIGNATURE_PREFIX = "sha256="
EXECUTOR_KINDS = ("webhook", "callable")

_RESPONSE_BYTES = RESPONSE_LIMIT * 4  # enough bytes for RESPONSE_LIMIT characters of UTF-8
_ERROR_EXCERPT = 200
_MAX_KEY_LENGTH = 255

_log = logging.getLogger(__name__)

ActionFunction = Callable[["ActionRequest"], Mapping[str, Any] | None]
Sleep = Callable[[float], None]


@dataclass(frozen=True)
class ActionRequest:
    """One approved action, as sent to the platform."""

    action_id: int
    idempotency_key: str
    case_id: int
    kind: str
    amount_minor: int | None
    currency: str
    channel: str
    merchant_id: str | None
    order_id: str | None
    reason: str
    proposed_by: str
    approved_by: str | None
    payload: Mapping[str, Any]

    def __post_init__(self) -> None:
        key = self.idempotency_key
        if not (0 < len(key) <= _MAX_KEY_LENGTH and key.isascii() and key.isprintable()):
            raise InputError(
                f"action {self.action_id}: idempotency key must be 1-{_MAX_KEY_LENGTH} "
                f"printable ASCII characters, got {key!r}"
            )
        amount = self.amount_minor
        if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int)):
            raise InputError(
                f"action {self.action_id}: amount_minor must be an integer number of minor "
                f"units, got {amount!r}"
            )

    def body(self) -> dict[str, Any]:
        """The JSON document sent to the platform (see the module docstring)."""
        return {
            "action_id": self.action_id,
            "idempotency_key": self.idempotency_key,
            "case_id": self.case_id,
            "kind": self.kind,
            "amount_minor": self.amount_minor,
            "currency": self.currency,
            "channel": self.channel,
            "merchant_id": self.merchant_id,
            "order_id": self.order_id,
            "reason": self.reason,
            "proposed_by": self.proposed_by,
            "approved_by": self.approved_by,
            "payload": dict(self.payload),
        }

    def encoded(self) -> bytes:
        """The body as canonical JSON bytes, exactly as signed and sent."""
        try:
            return canonical_json(self.body())
        except (TypeError, ValueError) as exc:
            raise InputError(f"action {self.action_id}: body is not JSON: {exc}") from exc


@dataclass(frozen=True)
class ExecutionResult:
    """What happened when an action was executed."""

    ok: bool
    attempts: int
    status_code: int | None
    response: str
    error: str | None
    retryable: bool


@runtime_checkable
class Executor(Protocol):
    """Carries out approved actions; never raises for a refusal or an outage."""

    def execute(self, request: ActionRequest) -> ExecutionResult: ...


def canonical_json(document: Mapping[str, Any]) -> bytes:
    """UTF-8 JSON with sorted keys and no spaces.

    >>> canonical_json({"b": 1, "a": "退款"}).decode()
    '{"a":"退款","b":1}'
    """
    text = json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8")


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header value: ``sha256=`` + hex HMAC-SHA256 of ``timestamp.body``."""
    message = timestamp.encode("ascii") + b"." + body
    return SIGNATURE_PREFIX + hmac.new(secret, message, hashlib.sha256).hexdigest()


def verify_signature(
    secret: bytes,
    timestamp: str,
    body: bytes,
    header: str,
    *,
    now: int | None = None,
    tolerance_s: int = 300,
) -> bool:
    """True if ``header`` signs ``timestamp.body`` and the timestamp is fresh.

    For the receiving end; compares in constant time.
    """
    if not secret or not (timestamp.isascii() and timestamp.isdigit()):
        return False
    current = int(time.time()) if now is None else now
    if abs(current - int(timestamp)) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).encode("ascii")
    return hmac.compare_digest(expected, header.encode("utf-8", "replace"))


@dataclass(frozen=True)
class _Attempt:
    """The outcome of one HTTP attempt, before the retry decision."""

    ok: bool
    status_code: int | None
    response: str
    error: str | None
    retryable: bool
    retry_after: float | None = None

    def result(self, attempts: int) -> ExecutionResult:
        error = self.error
        if error is not None and self.retryable:
            error = f"gave up after {attempts} attempt(s): {error}"
        return ExecutionResult(
            self.ok, attempts, self.status_code, self.response, error, self.retryable
        )


class WebhookExecutor:
    """Executes actions by POSTing them to the platform (protocol in the module docstring)."""

    def __init__(
        self,
        url: str,
        secret: str | bytes,
        *,
        timeout_s: float = 10.0,
        max_attempts: int = 5,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        sleep: Sleep = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = _checked_url(url)
        self._secret = _checked_secret(secret)
        _require(timeout_s > 0, f"executor timeout_s must be positive, got {timeout_s}")
        _require(max_attempts >= 1, f"executor max_attempts must be >= 1, got {max_attempts}")
        _require(
            0 <= backoff_base_s <= backoff_max_s,
            "executor backoff must satisfy 0 <= backoff_base_s <= backoff_max_s, "
            f"got {backoff_base_s} and {backoff_max_s}",
        )
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._sleep = sleep
        self._transport = transport

    def __repr__(self) -> str:  # never shows the secret
        return f"WebhookExecutor(url={self.url!r}, max_attempts={self.max_attempts})"

    def execute(self, request: ActionRequest) -> ExecutionResult:
        """POST the action, retrying temporary failures with the same key and body."""
        body = request.encoded()
        with httpx.Client(transport=self._transport, timeout=self.timeout_s) as client:
            attempt = 1
            while True:
                outcome = self._attempt(client, request.idempotency_key, body)
                if outcome.ok or not outcome.retryable or attempt >= self.max_attempts:
                    return outcome.result(attempt)
                delay = self._delay(attempt, outcome.retry_after)
                _log.warning(
                    "action %s: attempt %d failed (%s); retrying in %.2fs",
                    request.action_id,
                    attempt,
                    outcome.error,
                    delay,
                )
                self._sleep(delay)
                attempt += 1

    def _attempt(self, client: httpx.Client, key: str, body: bytes) -> _Attempt:
        headers = self._headers(key, body)
        try:
            with client.stream("POST", self.url, content=body, headers=headers) as response:
                text = _read_text(response)
        except httpx.RequestError as exc:
            return _transport_failure(exc)
        return _answered(response.status_code, text, response.headers.get("Retry-After"))

    def _headers(self, key: str, body: bytes) -> dict[str, str]:
        timestamp = str(int(time.time()))
        return {
            "Content-Type": "application/json",
            "Idempotency-Key": key,
            "X-Payrecon-Timestamp": timestamp,
            "X-Payrecon-Signature": sign(self._secret, timestamp, body),
        }

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.backoff_max_s)
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2.0 ** min(attempt - 1, 62))
        # Jitter spreads the retries of many actions failing at once over time.
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def _read_text(response: httpx.Response) -> str:
    """The start of the answer's body, without reading an unbounded answer into memory."""
    raw = bytearray()
    for chunk in response.iter_bytes():
        raw += chunk
        if len(raw) > _RESPONSE_BYTES:
            break
    charset = response.charset_encoding or "utf-8"
    try:
        text = bytes(raw).decode(charset, errors="replace")
    except LookupError:  # an unknown charset name in Content-Type
        text = bytes(raw).decode("utf-8", errors="replace")
    return text[:RESPONSE_LIMIT]


def _answered(status: int, text: str, retry_after: str | None) -> _Attempt:
    if 200 <= status < 300:
        return _Attempt(True, status, text, None, False)
    error = f"platform answered HTTP {status}"
    if text:
        error += f": {text[:_ERROR_EXCERPT]}"
    temporary = status == 429 or status >= 500
    wait = _retry_after_seconds(retry_after) if status in (429, 503) else None
    return _Attempt(False, status, text, error, temporary, wait)


def _retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` in seconds; None when absent or an HTTP date (we back off ourselves)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _transport_failure(exc: httpx.RequestError) -> _Attempt:
    # The request may have reached the platform before the failure; retrying is safe
    # only because the platform deduplicates on the idempotency key.
    temporary = isinstance(
        exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError
    )
    error = f"{type(exc).__name__}: {exc}"
    return _Attempt(False, None, "", error, temporary)


class CallableExecutor:
    """Executes actions by calling a Python function.

    The function receives the :class:`ActionRequest` and returns a mapping (recorded as
    the JSON response) or None; it signals failure by raising. It should deduplicate
    on ``request.idempotency_key`` itself, as the webhook protocol asks of a platform.
    A ``"package.module:function"`` path is imported on first use.
    """

    def __init__(self, target: str | ActionFunction) -> None:
        if isinstance(target, str):
            _check_target_path(target)
            self.target = target
            self._function: ActionFunction | None = None
        elif callable(target):
            self.target = f"{target.__module__}:{target.__qualname__}"
            self._function = target
        else:
            raise ConfigError(f"executor target must be a path or a callable, got {target!r}")

    def __repr__(self) -> str:
        return f"CallableExecutor({self.target!r})"

    @property
    def function(self) -> ActionFunction:
        """The target function, imported now if it was given as a path."""
        if self._function is None:
            self._function = _import_target(self.target)
        return self._function

    def execute(self, request: ActionRequest) -> ExecutionResult:
        """Call the function once; an exception is a failed result, not an error."""
        function = self.function  # a bad path raises ConfigError: configuration, not an outcome
        try:
            answer = function(request)
        except Exception as exc:
            temporary = isinstance(exc, TimeoutError | ConnectionError)
            error = f"{type(exc).__name__}: {exc}"
            return ExecutionResult(False, 1, None, "", error, temporary)
        if answer is None:
            return ExecutionResult(True, 1, None, "", None, False)
        if not isinstance(answer, Mapping):
            error = f"{self.target} returned {type(answer).__name__}, expected a mapping or None"
            return ExecutionResult(False, 1, None, repr(answer)[:RESPONSE_LIMIT], error, False)
        return ExecutionResult(True, 1, None, _json_text(answer), None, False)


def _json_text(answer: Mapping[str, Any]) -> str:
    try:
        text = json.dumps(dict(answer), sort_keys=True, ensure_ascii=False, default=str)
    except (TypeError, ValueError):  # e.g. keys of mixed types cannot be sorted
        text = repr(answer)
    return text[:RESPONSE_LIMIT]


def _check_target_path(path: str) -> None:
    module, colon, attribute = path.partition(":")
    names = [*module.split("."), *attribute.split(".")]
    if not colon or not all(name.isidentifier() for name in names):
        raise ConfigError(f"executor target {path!r} is not of the form 'package.module:function'")


def _import_target(path: str) -> ActionFunction:
    module_name, _, attribute = path.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(
            f"executor target {path!r}: cannot import module {module_name!r}: {exc}"
        ) from exc
    for name in attribute.split("."):
        if not hasattr(found, name):
            raise ConfigError(f"executor target {path!r}: {module_name!r} has no {attribute!r}")
        found = getattr(found, name)
    if not callable(found):
        raise ConfigError(f"executor target {path!r} is not callable")
    function: ActionFunction = found
    return function


def executor_from_config(
    kind: str,
    *,
    url: str | None,
    secret: str | bytes | None,
    target: str | None,
    timeout_s: float = 10.0,
    max_attempts: int = 5,
    backoff_base_s: float = 0.5,
    backoff_max_s: float = 30.0,
    sleep: Sleep = time.sleep,
    transport: httpx.BaseTransport | None = None,
) -> Executor:
    """Build the configured executor: ``"webhook"`` (url + secret) or ``"callable"`` (target)."""
    if kind == "webhook":
        if not url:
            raise ConfigError("executor 'webhook' needs a url")
        if secret is None:
            raise ConfigError("executor 'webhook' needs a secret")
        _require(target is None, "executor 'webhook' takes a url and secret, not a target")
        return WebhookExecutor(
            url,
            secret,
            timeout_s=timeout_s,
            max_attempts=max_attempts,
            backoff_base_s=backoff_base_s,
            backoff_max_s=backoff_max_s,
            sleep=sleep,
            transport=transport,
        )
    if kind == "callable":
        if not target:
            raise ConfigError("executor 'callable' needs a target ('package.module:function')")
        _require(url is None, "executor 'callable' takes a target, not a url")
        _require(secret is None, "executor 'callable' takes a target, not a secret")
        return CallableExecutor(target)
    raise ConfigError(f"unknown executor kind {kind!r}; expected one of {EXECUTOR_KINDS}")


def _checked_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"executor url must be an http(s) URL with a host, got {url!r}")
    return url


def _checked_secret(secret: str | bytes) -> bytes:
    raw = secret.encode("utf-8") if isinstance(secret, str) else secret
    if not raw.strip():
        raise ConfigError("executor secret must not be empty")
    return raw


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)
