"""Rendering a page with what every template needs: the user and the CSRF token."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from payrecon.web.deps import Principal


def page(
    request: Request, who: Principal, template: str, status_code: int = 200, **data: Any
) -> HTMLResponse:
    templates = request.app.state.web.templates
    response: HTMLResponse = templates.TemplateResponse(
        request,
        template,
        {"who": who.actor, "csrf": who.csrf, **data},
        status_code=status_code,
    )
    return response


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"
