"""Login, logout and the health check: the only routes reachable without a session."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from payrecon.errors import PermissionDeniedError
from payrecon.web.deps import Context, CsrfError, Viewer
from payrecon.web.security import SESSION_COOKIE

router = APIRouter(tags=["auth"])
LOGIN_CSRF_COOKIE = "payrecon_login_csrf"
PUBLIC_PATHS = frozenset({"/login", "/healthz"})


@router.get("/healthz", include_in_schema=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_form(
    request: Request, web: Context, next: str = "/", error: str | None = None
) -> Response:
    token = secrets.token_urlsafe(24)
    response = web.templates.TemplateResponse(
        request,
        "login.html",
        {"csrf": token, "next": _local(next), "error": error, "who": None},
        status_code=401 if error else 200,
    )
    _cookie(request, web, response, LOGIN_CSRF_COOKIE, token, max_age=3600)
    return response


@router.post("/login", include_in_schema=False)
def login(
    request: Request,
    web: Context,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Check the password (argon2), rate-limited per name and per client address."""
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not secrets.compare_digest(expected, csrf_token):
        raise CsrfError("the login form expired: reload the page and try again")
    client = request.client.host if request.client else "?"
    keys = (f"user:{username}", f"addr:{client}")
    if web.limiter.blocked(*keys):
        return login_form(request, web, next, "too many failed logins: wait a few minutes")
    try:
        actor = web.office.authenticate(username, password)
    except PermissionDeniedError:
        web.limiter.failed(*keys)
        return login_form(request, web, next, "wrong user name or password")
    web.limiter.succeeded(f"user:{username}")
    _, cookie = web.signer.new(actor.name)
    response = RedirectResponse(_local(next), status_code=303)
    _cookie(request, web, response, SESSION_COOKIE, cookie, max_age=web.signer.lifetime_s)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@router.post("/logout", include_in_schema=False)
def logout(request: Request, who: Viewer) -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _local(target: str) -> str:
    """Only redirect within the site (no ``//evil.example``)."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


def _cookie(
    request: Request, web: Context, response: Response, name: str, value: str, max_age: int
) -> None:
    policy = web.settings.web.secure_cookies
    https = request.url.scheme == "https" or (
        web.settings.web.trust_forwarded_proto
        and request.headers.get("x-forwarded-proto") == "https"
    )
    secure = policy == "always" or (policy == "auto" and https)
    response.set_cookie(
        name, value, max_age=max_age, path="/", httponly=True, samesite="lax", secure=secure
    )
