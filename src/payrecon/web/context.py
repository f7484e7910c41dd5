"""What every request handler shares: settings, the case service and friends."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi.templating import Jinja2Templates

from payrecon.cases.service import BackOffice, CaseService
from payrecon.config import Settings
from payrecon.service.runstore import RunStore
from payrecon.web.jobs import JobBoard
from payrecon.web.security import LoginLimiter, SessionSigner
from payrecon.web.tokens import TokenStore


@dataclass
class WebContext:
    """Built once per application by :func:`payrecon.web.app.create_app`."""

    settings: Settings
    service: CaseService
    office: BackOffice
    tokens: TokenStore
    runs: RunStore
    signer: SessionSigner
    limiter: LoginLimiter
    templates: Jinja2Templates
    jobs: JobBoard
