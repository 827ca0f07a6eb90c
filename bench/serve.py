"""The one launcher of every server the bench compares, so they differ only in the app.

`python -m bench.serve <app> --port N` serves one of APPS with UVICORN (one worker,
uvloop, httptools, no access log, proxy_headers off, the same keep-alive and
connection limit: what `python -m service` runs with its default settings). The service
is served with its own config (service/transport/server.py), whose one difference is
its httptools protocol subclass that adds the request read timeout and head limit, a
cost that is part of the service.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

# The service's own uvicorn settings at its defaults (service/__main__.py with
# FORECAST_PROXY_HEADERS=false, FORECAST_MAX_BODY_BYTES=1048576). ws_max_size only
# matters to the service (the others have no WebSocket route).
UVICORN: dict[str, Any] = {
    "loop": "uvloop",
    "http": "httptools",
    "ws": "websockets-sansio",
    "ws_max_size": 1_048_576,
    "access_log": False,
    "proxy_headers": False,
    "log_level": "warning",
    "timeout_graceful_shutdown": 10,
    "timeout_keep_alive": 75,
    "limit_concurrency": 2048,
}


def _service(args: argparse.Namespace) -> Any:
    # bench.compare_trees serves another checkout's service: its tree goes first.
    tree = os.environ.get("BENCH_SERVICE_TREE")
    if tree:
        sys.path.insert(0, tree)
    from service.app import configure_logging, create_app
    from service.settings import Settings

    settings = Settings()
    configure_logging(settings.log_level)
    return create_app(settings)


def _trivial_fastapi(args: argparse.Namespace) -> Any:
    from bench.trivial_app import create_app

    return create_app()


def _trivial_asgi(args: argparse.Namespace) -> Any:
    from bench.trivial_app import raw_asgi

    return raw_asgi


def _naive(args: argparse.Namespace) -> Any:
    import torch

    from bench.naive_app import create_app

    torch.set_num_threads(1)
    return create_app(args.models_dir, args.runs_dir, args.window)


APPS: dict[str, Callable[[argparse.Namespace], Any]] = {
    "service": _service,
    "trivial-fastapi": _trivial_fastapi,
    "trivial-asgi": _trivial_asgi,
    "naive": _naive,
}


def run(app: Any, port: int) -> None:
    if hasattr(app, "state") and hasattr(app.state, "service"):  # the service itself
        from service.settings import Settings
        from service.transport.server import uvicorn_config

        config = uvicorn_config(app, Settings(), host="127.0.0.1", port=port)
        config.log_level = UVICORN["log_level"]
        uvicorn.Server(config).run()
        return
    uvicorn.run(app, host="127.0.0.1", port=port, **UVICORN)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serve")
    parser.add_argument("app", choices=sorted(APPS))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--window", type=int, default=168)
    args = parser.parse_args(argv)
    run(APPS[args.app](args), args.port)


if __name__ == "__main__":
    main()
