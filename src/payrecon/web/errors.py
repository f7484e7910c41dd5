"""The one place the exception tree becomes HTTP: JSON under ``/api``, a page elsewhere.

NotFoundError -> 404        PermissionDeniedError (and CsrfError) -> 403
TransitionError, ConflictError, other WorkflowError -> 409
ConfigError -> 422          InputError -> 400       DependencyError -> 503
RunError -> 500             LoginRequired -> 401 (API) or a redirect to /login
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from payrecon.errors import (
    ConfigError,
    DependencyError,
    InputError,
    NotFoundError,
    PayreconError,
    PermissionDeniedError,
    RunError,
    WorkflowError,
)
from payrecon.web.deps import LoginRequired

STATUS: tuple[tuple[type[PayreconError], int], ...] = (
    (NotFoundError, 404),
    (PermissionDeniedError, 403),
    (WorkflowError, 409),
    (ConfigError, 422),
    (InputError, 400),
    (DependencyError, 503),
    (RunError, 500),
)


def status_of(exc: PayreconError) -> int:
    return next((code for kind, code in STATUS if isinstance(exc, kind)), 500)


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api") or "authorization" in request.headers


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(PayreconError, _payrecon_error)
    app.add_exception_handler(LoginRequired, _login_required)


async def _payrecon_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PayreconError)
    status = status_of(exc)
    body: dict[str, Any] = {"error": type(exc).__name__, "detail": str(exc)}
    if wants_json(request):
        return JSONResponse(body, status_code=status)
    templates = request.app.state.web.templates
    page = "_flash.html" if request.headers.get("hx-request") else "error.html"
    response: Response = templates.TemplateResponse(
        request,
        page,
        {**body, "status": status, "back": request.headers.get("referer", "/"), "who": None},
        status_code=status,
    )
    return response


async def _login_required(request: Request, exc: Exception) -> Response:
    if wants_json(request):
        return JSONResponse(
            {"error": "LoginRequired", "detail": str(exc)},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    target = "/login?next=" + quote(request.url.path, safe="/")
    if request.headers.get("hx-request"):
        return Response(status_code=401, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)
