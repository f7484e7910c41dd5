"""Schemathesis fuzzes every ``/api`` operation from its OpenAPI schema: never a 500."""

from __future__ import annotations

from typing import Any

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings

from payrecon.core.workflow import Actor, Role
from payrecon.web.tokens import TokenStore

EXAMPLES_PER_OPERATION = 10


def test_the_api_never_answers_500(app: FastAPI) -> None:
    service = app.state.web.service
    _, token = TokenStore(service).issue("root", "fuzz", by=Actor("root", Role.ADMIN))
    headers = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app, headers=headers)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    statuses: list[int] = []
    for operation in operations:
        _fuzz(operation, headers, statuses)
    # Authenticated for real: many answers succeed, not just 401s.
    assert sum(200 <= s < 300 for s in statuses) >= 10


def _fuzz(operation: Any, headers: dict[str, str], statuses: list[int]) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def never_500(case: Any) -> None:
        response = case.call(headers=headers)
        statuses.append(response.status_code)
        assert response.status_code < 500, (case.path, response.status_code, response.text)

    never_500()
