"""The one dependency layer: who is asking, whether the form is genuine, and role checks.

Every router except login and ``/healthz`` depends on :func:`principal`; a route that
needs more than viewing asks for :data:`Operator`, :data:`Approver` or :data:`Admin`.
Templates never decide who may do what: they show what :mod:`payrecon.web.views`
computed with the workflow, and the case service enforces it again on every command.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from payrecon.core.workflow import Actor, Role
from payrecon.errors import NotFoundError, PermissionDeniedError
from payrecon.web.context import WebContext
from payrecon.web.security import SESSION_COOKIE, Session, csrf_matches

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class LoginRequired(Exception):
    """No valid session or bearer token: pages redirect to /login, the API answers 401."""


class CsrfError(PermissionDeniedError):
    """A form (or HTMX request) without the session's CSRF token."""


@dataclass(frozen=True)
class Principal:
    """The user behind a request; ``session`` is ``None`` for a bearer token."""

    actor: Actor
    session: Session | None

    @property
    def csrf(self) -> str:
        return self.session.csrf if self.session else ""


def context(request: Request) -> WebContext:
    web: WebContext = request.app.state.web
    return web


Context = Annotated[WebContext, Depends(context)]


async def principal(request: Request) -> Principal:
    """The logged-in user (session cookie, or ``Authorization: Bearer``); else 401/redirect."""
    web = context(request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        actor = web.tokens.actor(token.strip())
        if actor is None:
            raise LoginRequired("unknown or revoked API token")
        # No cookie is involved, so there is nothing to forge: no CSRF check.
        return Principal(actor, None)
    session = web.signer.read(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise LoginRequired("log in first")
    try:
        actor = web.service.actor(session.user)
    except NotFoundError as exc:
        raise LoginRequired(str(exc)) from exc
    if request.method not in SAFE_METHODS:
        await check_csrf(request, session)
    return Principal(actor, session)


async def check_csrf(request: Request, session: Session) -> None:
    offered = request.headers.get(CSRF_HEADER)
    content_type = request.headers.get("content-type", "")
    if offered is None and content_type.startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        field = (await request.form()).get(CSRF_FIELD)
        offered = field if isinstance(field, str) else None
    if not csrf_matches(session, offered):
        raise CsrfError("missing or wrong CSRF token: reload the page and try again")


def at_least(role: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency passing only users whose role is at least ``role``."""

    async def check(who: Annotated[Principal, Depends(principal)]) -> Principal:
        if not who.actor.role.at_least(role):
            raise PermissionDeniedError(f"{who.actor.name} ({who.actor.role}) needs {role}")
        return who

    return check


Viewer = Annotated[Principal, Depends(principal)]
Operator = Annotated[Principal, Depends(at_least(Role.OPERATOR))]
Approver = Annotated[Principal, Depends(at_least(Role.APPROVER))]
Admin = Annotated[Principal, Depends(at_least(Role.ADMIN))]
