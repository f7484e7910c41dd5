"""The back-office: FastAPI pages (Jinja2 + HTMX) and the JSON API under ``/api``.

Nothing is created at import time; build the application with :func:`create_app`.
Importing this package does not import FastAPI (the migrations import ``web.models``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from payrecon.config import Settings


def create_app(settings: Settings) -> FastAPI:
    """The back-office application on ``settings`` (see :mod:`payrecon.web.app`)."""
    from payrecon.web.app import create_app as build

    return build(settings)
