"""``payrecon serve``: the back-office under uvicorn."""

from __future__ import annotations

import sys

from payrecon.config import Settings
from payrecon.errors import require


def serve(settings: Settings, host: str, port: int) -> None:
    """Build the app on ``settings`` and serve it until interrupted."""
    require("fastapi", "web")
    require("uvicorn", "web")
    import uvicorn

    from payrecon.web.app import create_app

    app = create_app(settings)
    web = settings.web
    where = f"http://{host}:{port}/"
    if web.environment == "development":
        where += " (development: demo secrets allowed; set web.environment for production)"
    print(f"payrecon back-office on {where}", file=sys.stderr, flush=True)
    uvicorn.run(
        app, host=host, port=port, log_level="info", proxy_headers=web.trust_forwarded_proto
    )
