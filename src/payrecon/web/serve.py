"""``payrecon serve``: the back-office under uvicorn, in one or several worker processes."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from payrecon.config import Settings
from payrecon.errors import require

if TYPE_CHECKING:
    from fastapi import FastAPI

# Worker processes rebuild the app from the settings the parent resolved (file + env).
SETTINGS_ENV = "PAYRECON_SERVE_SETTINGS_JSON"


def serve(settings: Settings, host: str, port: int, workers: int | None = None) -> None:
    """Build the app on ``settings`` and serve it until interrupted.

    ``workers`` (default ``web.workers``) above 1 starts that many processes sharing the
    port, each with its own connection pool; uvicorn restarts one that dies.
    """
    require("fastapi", "web")
    require("uvicorn", "web")
    import uvicorn

    from payrecon.web.app import create_app

    web = settings.web
    count = workers or web.workers
    where = f"http://{host}:{port}/"
    if web.environment == "development":
        where += " (development: demo secrets allowed; set web.environment for production)"
    if count > 1:
        where += f", {count} worker processes"
    print(f"payrecon back-office on {where}", file=sys.stderr, flush=True)
    options = {"host": host, "port": port, "proxy_headers": web.trust_forwarded_proto}
    if count == 1:
        uvicorn.run(create_app(settings), log_level="info", **options)  # type: ignore[arg-type]
        return
    # Fail here, once, on a bad store rather than in every worker.
    create_app(settings).state.web.service.store.close()
    os.environ[SETTINGS_ENV] = settings.model_dump_json()
    uvicorn.run(
        f"{__name__}:worker_app",
        factory=True,
        workers=count,
        log_level="warning",
        **options,  # type: ignore[arg-type]
    )


def worker_app() -> FastAPI:
    """The app in one worker process (uvicorn's factory), on the parent's settings."""
    from payrecon.web.app import create_app

    return create_app(Settings.model_validate_json(os.environ[SETTINGS_ENV]))
