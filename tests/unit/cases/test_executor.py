"""Executing approved actions: webhook protocol, retries, idempotency, callables, config."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest

from payrecon.cases.executor import (
    RESPONSE_LIMIT,
    ActionRequest,
    CallableExecutor,
    ExecutionResult,
    Executor,
    WebhookExecutor,
    executor_from_config,
    sign,
    verify_signature,
)
from payrecon.errors import ConfigError, InputError
from tests.support.fake_platform import FakePlatform

SECRET = b"shared-secret"


def action(action_id: int = 7, **changes: Any) -> ActionRequest:
    fields: dict[str, Any] = {
        "action_id": action_id,
        "idempotency_key": f"payrecon-action-{action_id}",
        "case_id": 3,
        "kind": "supplement_order",
        "amount_minor": 1250,
        "currency": "CNY",
        "channel": "wechat",
        "merchant_id": "1601959334",
        "order_id": "P20261120001",
        "reason": "渠道成功，平台处理中：补单",
        "proposed_by": "zhang",
        "approved_by": "li",
        "payload": {"channel_record": {"status": "SUCCESS", "amount": 1250}},
    }
    return ActionRequest(**{**fields, **changes})


@pytest.fixture
def platform() -> Iterator[FakePlatform]:
    with FakePlatform(SECRET) as running:
        yield running
    assert running.errors == []


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def executor(platform: FakePlatform, sleeps: list[float]) -> WebhookExecutor:
    return WebhookExecutor(
        platform.url, SECRET, backoff_base_s=1.0, backoff_max_s=30.0, sleep=sleeps.append
    )


# -- signature ---------------------------------------------------------------------------


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"a":1}'
    expected = hmac.new(SECRET, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, "1700000000", body) == f"sha256={expected}"


def test_signature_round_trip_and_tampering() -> None:
    body, stamp = action().encoded(), "1700000000"
    header = sign(SECRET, stamp, body)
    assert verify_signature(SECRET, stamp, body, header, now=1700000000)
    assert verify_signature(SECRET, stamp, body, header, now=1700000300)
    assert not verify_signature(
        SECRET, stamp, body.replace(b"1250", b"9250"), header, now=1700000000
    )
    assert not verify_signature(SECRET, "1700000001", body, header, now=1700000000)
    assert not verify_signature(b"other-secret", stamp, body, header, now=1700000000)
    assert not verify_signature(SECRET, stamp, body, header.upper(), now=1700000000)
    assert not verify_signature(SECRET, stamp, body, "sha256=", now=1700000000)
    assert not verify_signature(SECRET, "17e8", body, header, now=1700000000)
    assert not verify_signature(b"", stamp, body, sign(b"", stamp, body), now=1700000000)


@pytest.mark.parametrize("skew", [301, -301])
def test_signature_outside_tolerance_is_refused(skew: int) -> None:
    body, stamp = b"{}", "1700000000"
    header = sign(SECRET, stamp, body)
    assert not verify_signature(SECRET, stamp, body, header, now=1700000000 + skew)
    assert verify_signature(SECRET, stamp, body, header, now=1700000000 + skew, tolerance_s=301)


# -- the request -------------------------------------------------------------------------


def test_body_is_canonical_utf8_json_with_integer_amount() -> None:
    request = action()
    encoded = request.encoded()
    assert encoded == json.dumps(
        request.body(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")
    assert "补单".encode() in encoded
    assert b'"amount_minor":1250,' in encoded
    assert json.loads(encoded)["idempotency_key"] == "payrecon-action-7"


@pytest.mark.parametrize("amount", [12.5, True, "1250"])
def test_amount_must_be_integer_minor_units(amount: object) -> None:
    with pytest.raises(InputError, match="amount_minor"):
        action(amount_minor=amount)


@pytest.mark.parametrize("key", ["", "键", "a b\n", "k" * 256])
def test_idempotency_key_must_be_usable_as_a_header(key: str) -> None:
    with pytest.raises(InputError, match="idempotency key"):
        action(idempotency_key=key)


def test_payload_that_is_not_json_is_an_input_error() -> None:
    with pytest.raises(InputError, match="action 7"):
        action(payload={"when": object()}).encoded()


# -- webhook executor against the fake platform ------------------------------------------


def test_success_on_first_try(
    platform: FakePlatform, executor: WebhookExecutor, sleeps: list[float]
) -> None:
    result = executor.execute(action())

    assert result.ok and result.attempts == 1 and result.status_code == 200
    assert result.error is None and not result.retryable
    assert json.loads(result.response)["reference"] == "fake-1"
    assert platform.moves == [action().body()]
    assert sleeps == []
    (sent,) = platform.requests
    assert sent.headers["content-type"] == "application/json"
    assert sent.idempotency_key == "payrecon-action-7"
    assert sent.body == action().encoded()
    stamp = sent.headers["x-payrecon-timestamp"]
    assert verify_signature(SECRET, stamp, sent.body, sent.headers["x-payrecon-signature"])


def test_retries_after_503_with_same_key_and_body(
    platform: FakePlatform, executor: WebhookExecutor, sleeps: list[float]
) -> None:
    platform.fail_next(2, status=503)

    result = executor.execute(action())

    assert result.ok and result.attempts == 3
    assert len(platform.moves) == 1
    assert {r.idempotency_key for r in platform.requests} == {"payrecon-action-7"}
    assert {r.body for r in platform.requests} == {action().encoded()}
    assert len(sleeps) == 2
    assert 0.5 <= sleeps[0] <= 1.0  # backoff_base_s * 2**0, jittered into [d/2, d]
    assert 1.0 <= sleeps[1] <= 2.0


def test_retries_after_dropped_connection(
    platform: FakePlatform, executor: WebhookExecutor
) -> None:
    platform.drop_next(1)

    result = executor.execute(action())

    assert result.ok and result.attempts == 2
    assert len(platform.requests) == 2 and len(platform.moves) == 1


def test_lost_answer_is_retried_without_moving_money_twice(
    platform: FakePlatform, executor: WebhookExecutor
) -> None:
    platform.drop_next(1, after_move=True)

    result = executor.execute(action())

    assert result.ok and result.attempts == 2
    assert len(platform.moves) == 1
    assert json.loads(result.response)["reference"] == "fake-1"


def test_429_honours_retry_after(
    platform: FakePlatform, executor: WebhookExecutor, sleeps: list[float]
) -> None:
    platform.fail_next(1, status=429, retry_after=7)

    result = executor.execute(action())

    assert result.ok and result.attempts == 2
    assert sleeps == [7.0]


def test_retry_after_is_capped(platform: FakePlatform, sleeps: list[float]) -> None:
    executor = WebhookExecutor(platform.url, SECRET, backoff_max_s=12.0, sleep=sleeps.append)
    platform.fail_next(1, status=429, retry_after=3600)

    assert executor.execute(action()).ok
    assert sleeps == [12.0]


def test_backoff_never_exceeds_its_cap(platform: FakePlatform, sleeps: list[float]) -> None:
    executor = WebhookExecutor(
        platform.url,
        SECRET,
        max_attempts=6,
        backoff_base_s=1.0,
        backoff_max_s=3.0,
        sleep=sleeps.append,
    )
    platform.fail_next(5, status=500)

    assert executor.execute(action()).ok
    assert len(sleeps) == 5
    assert all(1.5 <= s <= 3.0 for s in sleeps[2:])


def test_400_is_a_permanent_refusal(
    platform: FakePlatform, executor: WebhookExecutor, sleeps: list[float]
) -> None:
    platform.reject_next(400, body='{"error": "order already paid"}')

    result = executor.execute(action())

    assert not result.ok and not result.retryable
    assert result.attempts == 1 and result.status_code == 400
    assert result.response == '{"error": "order already paid"}'
    assert result.error is not None and "400" in result.error
    assert "order already paid" in result.error
    assert sleeps == [] and platform.moves == []


def test_gives_up_after_max_attempts_as_retryable(
    platform: FakePlatform, sleeps: list[float]
) -> None:
    executor = WebhookExecutor(platform.url, SECRET, max_attempts=3, sleep=sleeps.append)
    platform.fail_next(10, status=503, body="maintenance")

    result = executor.execute(action())

    assert not result.ok and result.retryable
    assert result.attempts == 3 and result.status_code == 503
    assert result.response == "maintenance"
    assert result.error is not None and "gave up after 3" in result.error
    assert len(platform.requests) == 3 and len(sleeps) == 2
    assert platform.moves == []


def test_executing_the_same_action_twice_moves_money_once(
    platform: FakePlatform, executor: WebhookExecutor
) -> None:
    first = executor.execute(action())
    second = executor.execute(action())

    assert first.ok and second.ok
    assert second.response == first.response
    assert len(platform.requests) == 2 and len(platform.moves) == 1


def test_a_second_executor_after_a_restart_moves_money_once(platform: FakePlatform) -> None:
    for _ in range(2):
        assert WebhookExecutor(platform.url, SECRET, sleep=lambda _s: None).execute(action()).ok
    assert len(platform.moves) == 1


def test_distinct_actions_each_move_money(
    platform: FakePlatform, executor: WebhookExecutor
) -> None:
    assert executor.execute(action(7)).ok and executor.execute(action(8)).ok
    assert [m["action_id"] for m in platform.moves] == [7, 8]


def test_reused_key_with_different_body_is_refused(
    platform: FakePlatform, executor: WebhookExecutor
) -> None:
    assert executor.execute(action()).ok

    result = executor.execute(action(amount_minor=99999))

    assert not result.ok and not result.retryable and result.status_code == 422
    assert len(platform.moves) == 1


def test_wrong_secret_is_refused_and_moves_nothing(
    platform: FakePlatform, sleeps: list[float]
) -> None:
    wrong = WebhookExecutor(platform.url, b"not-the-secret", sleep=sleeps.append)

    result = wrong.execute(action())

    assert not result.ok and not result.retryable and result.status_code == 401
    assert platform.moves == [] and sleeps == []


# -- the fake platform holds the sender to the protocol -----------------------------------


def post(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    with httpx.Client() as client:
        return client.post(url, content=body, headers=headers)


def signed_headers(body: bytes, stamp: str, key: str = "k-1") -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Idempotency-Key": key,
        "X-Payrecon-Timestamp": stamp,
        "X-Payrecon-Signature": sign(SECRET, stamp, body),
    }


def test_fake_platform_refuses_a_stale_timestamp() -> None:
    with FakePlatform(SECRET, clock=lambda: 1_700_000_301.0) as fake:
        answer = post(fake.url, b"{}", signed_headers(b"{}", "1700000000"))
        assert answer.status_code == 401 and fake.moves == []


def test_fake_platform_refuses_non_canonical_json_and_a_missing_key(
    platform: FakePlatform,
) -> None:
    loose, now = b'{"b": 1, "a": 2}', str(int(time.time()))
    assert post(platform.url, loose, signed_headers(loose, now)).status_code == 400
    headers = signed_headers(b"{}", now)
    del headers["Idempotency-Key"]
    assert post(platform.url, b"{}", headers).status_code == 400
    assert platform.moves == []


# -- webhook executor against scripted transports -----------------------------------------


def scripted(*steps: httpx.Response | Exception) -> httpx.MockTransport:
    queue = list(steps)

    def answer(request: httpx.Request) -> httpx.Response:
        step = queue.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    return httpx.MockTransport(answer)


def test_timeouts_are_retried_then_reported_retryable(sleeps: list[float]) -> None:
    transport = scripted(*[httpx.ReadTimeout("timed out")] * 3)
    executor = WebhookExecutor(
        "https://platform.test/actions",
        SECRET,
        max_attempts=3,
        sleep=sleeps.append,
        transport=transport,
    )

    result = executor.execute(action())

    assert not result.ok and result.retryable and result.attempts == 3
    assert result.status_code is None
    assert result.error is not None and "ReadTimeout" in result.error
    assert len(sleeps) == 2


def test_timeout_then_success(sleeps: list[float]) -> None:
    transport = scripted(httpx.ConnectTimeout("slow"), httpx.Response(201, text="queued"))
    executor = WebhookExecutor(
        "https://platform.test/actions", SECRET, sleep=sleeps.append, transport=transport
    )

    result = executor.execute(action())

    assert result.ok and result.attempts == 2 and result.status_code == 201
    assert result.response == "queued"


def test_long_answers_are_truncated() -> None:
    transport = scripted(httpx.Response(200, text="x" * 100_000))
    executor = WebhookExecutor("https://platform.test/actions", SECRET, transport=transport)

    result = executor.execute(action())

    assert result.ok and result.response == "x" * RESPONSE_LIMIT


def test_redirect_is_not_followed_or_retried(sleeps: list[float]) -> None:
    redirect = httpx.Response(302, headers={"Location": "https://elsewhere.test/"})
    executor = WebhookExecutor(
        "https://platform.test/actions", SECRET, sleep=sleeps.append, transport=scripted(redirect)
    )

    result = executor.execute(action())

    assert not result.ok and not result.retryable and result.status_code == 302
    assert sleeps == []


def test_repr_does_not_show_the_secret() -> None:
    assert "shared-secret" not in repr(WebhookExecutor("https://platform.test/", SECRET))


# -- callable executor -------------------------------------------------------------------

calls: list[ActionRequest] = []


def record_action(request: ActionRequest) -> Mapping[str, Any]:
    """A target for the import-path test."""
    calls.append(request)
    return {"reference": f"ledger-{request.action_id}", "金额": request.amount_minor}


def test_callable_by_import_path() -> None:
    calls.clear()
    executor = CallableExecutor(f"{__name__}:record_action")

    result = executor.execute(action())

    assert result == ExecutionResult(
        ok=True,
        attempts=1,
        status_code=None,
        response='{"reference": "ledger-7", "金额": 1250}',
        error=None,
        retryable=False,
    )
    assert calls == [action()]


def test_callable_by_object_returning_none() -> None:
    seen: list[int] = []

    def carry_out(request: ActionRequest) -> None:
        seen.append(request.action_id)

    result = CallableExecutor(carry_out).execute(action())

    assert result.ok and result.response == "" and seen == [7]


@pytest.mark.parametrize(
    ("exception", "retryable"),
    [
        (ValueError("order P1 is closed"), False),
        (RuntimeError("order P1 is closed"), False),
        (TimeoutError("order P1 is closed"), True),
        (ConnectionError("order P1 is closed"), True),
    ],
)
def test_callable_exception_is_a_failed_result(exception: Exception, retryable: bool) -> None:
    def carry_out(request: ActionRequest) -> None:
        raise exception

    result = CallableExecutor(carry_out).execute(action())

    assert not result.ok and result.retryable is retryable and result.attempts == 1
    assert result.error is not None and "order P1 is closed" in result.error


def test_callable_returning_something_else_is_a_failure() -> None:
    result = CallableExecutor(lambda _request: False).execute(action())  # type: ignore[arg-type, return-value]

    assert not result.ok and not result.retryable
    assert result.error is not None and "expected a mapping" in result.error


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("payrecon_no_such_module:carry_out", "cannot import module"),
        ("json:no_such_function", "has no"),
        ("json:__doc__", "not callable"),
    ],
)
def test_bad_import_path_is_a_config_error_naming_it(path: str, message: str) -> None:
    executor = CallableExecutor(path)  # imported lazily, on first use
    with pytest.raises(ConfigError, match=message) as raised:
        executor.execute(action())
    assert path in str(raised.value)


@pytest.mark.parametrize("path", ["json", "json:", ":dumps", "json:dumps()", "a b:c"])
def test_malformed_import_path_is_refused_at_once(path: str) -> None:
    with pytest.raises(ConfigError, match=r"package\.module:function"):
        CallableExecutor(path)


# -- configuration -----------------------------------------------------------------------


def test_executor_from_config_builds_each_kind() -> None:
    webhook = executor_from_config(
        "webhook", url="https://platform.test/actions", secret="s3cret", target=None
    )
    function = executor_from_config("callable", url=None, secret=None, target="json:dumps")

    assert isinstance(webhook, WebhookExecutor) and isinstance(webhook, Executor)
    assert isinstance(function, CallableExecutor) and isinstance(function, Executor)


@pytest.mark.parametrize(
    ("kind", "settings", "message"),
    [
        ("smtp", {}, "unknown executor kind 'smtp'"),
        ("webhook", {"secret": "s"}, "needs a url"),
        ("webhook", {"url": "https://p.test/"}, "needs a secret"),
        ("webhook", {"url": "https://p.test/", "secret": ""}, "secret must not be empty"),
        ("webhook", {"url": "ftp://p.test/", "secret": "s"}, "http"),
        ("webhook", {"url": "https:///nohost", "secret": "s"}, "host"),
        ("webhook", {"url": "https://p.test/", "secret": "s", "target": "m:f"}, "not a target"),
        ("callable", {}, "needs a target"),
        ("callable", {"target": "m:f", "url": "https://p.test/"}, "not a url"),
        ("callable", {"target": "m:f", "secret": "s"}, "not a secret"),
    ],
)
def test_executor_from_config_errors(kind: str, settings: dict[str, Any], message: str) -> None:
    arguments = {"url": None, "secret": None, "target": None, **settings}
    with pytest.raises(ConfigError, match=message):
        executor_from_config(kind, **arguments)


@pytest.mark.parametrize(
    "bad",
    [{"max_attempts": 0}, {"timeout_s": 0}, {"backoff_base_s": 5.0, "backoff_max_s": 1.0}],
)
def test_webhook_limits_are_checked(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        WebhookExecutor("https://platform.test/", SECRET, **bad)
