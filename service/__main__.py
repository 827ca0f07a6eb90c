"""``python -m service``: validate settings, then serve with uvicorn (uvloop, httptools)."""

from __future__ import annotations

import sys

import uvicorn
from pydantic import ValidationError

from service.app import configure_logging, create_app
from service.settings import Settings


def main() -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"invalid FORECAST_* settings:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_max_size=settings.max_body_bytes,
        log_level=settings.log_level,
        access_log=False,  # per-request logging costs more than the model step
        timeout_graceful_shutdown=10,
        proxy_headers=settings.proxy_headers,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
