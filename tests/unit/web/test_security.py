"""Login, sessions, CSRF, rate limiting, roles, and that every route needs a login."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Mount

from payrecon.config import DEV_SECRET_KEY, WebSettings
from payrecon.web.routes.auth import PUBLIC_PATHS
from payrecon.web.security import SESSION_COOKIE, LoginLimiter, SessionSigner
from tests.unit.web.conftest import Login, TestClient, csrf_of, log_in


def _concrete(path: str) -> str:
    return (
        path.replace("{case_id}", "1")
        .replace("{run_id}", "r")
        .replace("{name}", "summary.json")
        .replace("{job_id}", "j")
        .replace("{token_id}", "1")
        .replace("{command}", "start")
    )


def all_routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    """Every endpoint of the app, walking included routers (FastAPI keeps them nested)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, set(route.methods)
        elif hasattr(route, "original_router"):
            nested = prefix + route.include_context.prefix
            yield from all_routes(route.original_router.routes, nested)
        elif not isinstance(route, Mount):  # the static assets are the one mount
            raise AssertionError(f"unexpected route {route!r}")


def test_every_route_requires_a_login_except_login_and_health(
    app: FastAPI, anonymous: TestClient
) -> None:
    routes = list(all_routes(app.routes))
    assert len(routes) > 25
    public = set()
    for path, methods in routes:
        for method in methods - {"HEAD"}:
            answer = anonymous.request(method, _concrete(path))
            if path.startswith("/api"):
                refused = answer.status_code == 401
            else:
                refused = answer.status_code == 303 and answer.headers["location"].startswith(
                    "/login"
                )
            if not refused:
                public.add(path)
    assert public == PUBLIC_PATHS


def test_openapi_and_docs_are_behind_the_login(anonymous: TestClient, login: Login) -> None:
    assert anonymous.get("/api/openapi.json").status_code == 401
    schema = login("victor").get("/api/openapi.json").json()
    assert "/api/cases" in schema["paths"]


def test_login_sets_a_hardened_session_cookie(anonymous: TestClient) -> None:
    answer = log_in(anonymous, "alice")
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert "secure" not in cookie  # plain http in development
    assert anonymous.get("/").status_code == 200


def test_the_session_cookie_is_secure_over_https(app: FastAPI) -> None:
    client = TestClient(app, base_url="https://testserver", follow_redirects=False)
    assert "secure" in log_in(client, "alice").headers["set-cookie"].lower()


def test_a_wrong_password_is_refused(anonymous: TestClient) -> None:
    answer = log_in(anonymous, "alice", "not-the-password")
    assert answer.status_code == 401
    assert "wrong user name or password" in answer.text
    assert SESSION_COOKIE not in anonymous.cookies
    assert log_in(anonymous, "nobody").status_code == 401


def test_logins_are_rate_limited(anonymous: TestClient) -> None:
    for _ in range(WebSettings().login_attempts):
        assert log_in(anonymous, "bob", "guess-guess").status_code == 401
    blocked = log_in(anonymous, "bob")  # even the right password, for now
    assert blocked.status_code == 401 and "too many failed logins" in blocked.text


def test_the_limiter_forgets_after_its_window() -> None:
    now = [0.0]
    limiter = LoginLimiter(2, 60, clock=lambda: now[0])
    limiter.failed("k")
    limiter.failed("k")
    assert limiter.blocked("k")
    now[0] = 61
    assert not limiter.blocked("k")


def test_a_forged_or_expired_session_is_not_accepted(anonymous: TestClient) -> None:
    now = [1000.0]
    signer = SessionSigner("another key", 60, clock=lambda: now[0])
    _, forged = signer.new("root")
    anonymous.cookies.set(SESSION_COOKIE, forged)
    assert anonymous.get("/").status_code == 303
    mine = SessionSigner(DEV_SECRET_KEY, 60, clock=lambda: now[0])
    session, cookie = mine.new("root")
    assert mine.read(cookie) == session
    now[0] += 61
    assert mine.read(cookie) is None
    assert mine.read(cookie[:-1] + "0") is None


def test_the_login_form_needs_its_csrf_token(anonymous: TestClient) -> None:
    anonymous.get("/login")
    answer = anonymous.post("/login", data={"username": "alice", "password": "x" * 10})
    assert answer.status_code == 403


def test_forms_without_the_csrf_token_are_refused(login: Login) -> None:
    alice = login("alice")
    refused = alice.post("/cases/1/comment", data={"body": "hello"})
    assert refused.status_code == 403 and "CSRF" in refused.text
    wrong = alice.post("/cases/1/comment", data={"body": "hello", "csrf_token": "nope"})
    assert wrong.status_code == 403
    token = csrf_of(alice.get("/cases/1").text)
    assert (
        alice.post("/cases/1/comment", data={"body": "hi", "csrf_token": token}).status_code == 303
    )
    headed = alice.post("/cases/1/comment", data={"body": "hx"}, headers={"X-CSRF-Token": token})
    assert headed.status_code == 303


def test_logout_needs_the_csrf_token_and_ends_the_session(login: Login) -> None:
    alice = login("alice")
    assert alice.post("/logout").status_code == 403
    token = csrf_of(alice.get("/").text)
    assert alice.post("/logout", data={"csrf_token": token}).status_code == 303
    assert alice.get("/").status_code == 303


@pytest.mark.parametrize(
    ("user", "method", "path", "status"),
    [
        ("victor", "get", "/runs/upload", 403),
        ("victor", "post", "/api/cases/1/start", 403),
        ("alice", "post", "/api/users", 403),
        ("alice", "get", "/runs/upload", 200),
    ],
)
def test_roles_are_checked_in_the_dependency_layer(
    login: Login, user: str, method: str, path: str, status: int
) -> None:
    client = login(user)
    token = csrf_of(client.get("/").text)
    body = {"name": "eve", "role": "viewer"} if path == "/api/users" else None
    answer = client.request(method, path, json=body, headers={"X-CSRF-Token": token})
    assert answer.status_code == status


def test_production_refuses_the_default_secret() -> None:
    with pytest.raises(ValueError, match="secret_key"):
        WebSettings(environment="production")
    with pytest.raises(ValueError, match="secret_key"):
        WebSettings(environment="production", secret_key="short")
    WebSettings(environment="production", secret_key="s" * 40)
