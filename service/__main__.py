"""``python -m service``: validate settings, then serve with uvicorn (uvloop, httptools)."""

from __future__ import annotations

import sys

import uvicorn
from pydantic import ValidationError

from service.app import configure_logging, create_app
from service.settings import Settings
from service.transport.server import uvicorn_config


def main() -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"invalid FORECAST_* settings:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        app = create_app(settings)
    except ValueError as exc:  # e.g. a keys file that does not parse
        print(f"invalid FORECAST_* settings: {exc}", file=sys.stderr)
        return 2
    uvicorn.Server(uvicorn_config(app, settings)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
