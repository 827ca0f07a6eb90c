"""How every comparison server runs: the service's own uvicorn settings (one worker,
uvloop, httptools, no access log), so the servers differ only in what they compute."""

from __future__ import annotations

from typing import Any

import uvicorn


def run(app: Any, port: int) -> None:
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )
