"""``create_app(settings)``: the back-office application, built from settings alone."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from payrecon.cases.service import BackOffice, CaseService
from payrecon.config import Settings
from payrecon.core.money import format_minor
from payrecon.service.cases import case_service
from payrecon.service.runstore import RunStore
from payrecon.web import errors
from payrecon.web.context import WebContext
from payrecon.web.deps import principal
from payrecon.web.jobs import JobBoard
from payrecon.web.routes import api, auth, cases, runs
from payrecon.web.security import LoginLimiter, SessionSigner
from payrecon.web.tokens import TokenStore
from payrecon.web.views import fee, money

HERE = Path(__file__).parent
STATIC = HERE / "static"
VENDOR_FILES = {"htmx": "htmx.min.js", "chart": "chart.umd.min.js"}


def create_app(settings: Settings, service: CaseService | None = None) -> FastAPI:
    """The back-office on ``settings``' case store and run store.

    ``service`` replaces the configured case service (tests pass one with a fake clock
    or executor). The case store is opened here, never at import time.
    """
    app = FastAPI(
        title="payrecon back-office",
        version="1",
        description="Discrepancy cases (差错), runs and the workflow's actions and approvals.",
        # Served by routes.api behind the login like everything else.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.web = _context(settings, service or case_service(settings))
    errors.install(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(auth.router)
    protected = [Depends(principal)]
    app.include_router(api.router, prefix="/api", dependencies=protected)
    app.include_router(runs.router, dependencies=protected)
    app.include_router(cases.router, dependencies=protected)
    return app


def _context(settings: Settings, service: CaseService) -> WebContext:
    web = settings.web
    return WebContext(
        settings=settings,
        service=service,
        office=BackOffice(service),
        tokens=TokenStore(service),
        runs=RunStore(settings.home),
        signer=SessionSigner(web.secret_key, int(web.session_hours * 3600)),
        limiter=LoginLimiter(web.login_attempts, web.login_window_seconds, time.monotonic),
        templates=_templates(),
        jobs=JobBoard(settings),
    )


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["money"] = money
    templates.env.filters["fee"] = fee
    templates.env.filters["plain"] = format_minor
    vendor = STATIC / "vendor"
    templates.env.globals["vendor"] = {
        name: f"/static/vendor/{file}"
        for name, file in VENDOR_FILES.items()
        if (vendor / file).is_file()
    }
    return templates
