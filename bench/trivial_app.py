"""The HTTP floors: POST endpoints that read the body and answer a constant.

`create_app()` is a FastAPI route (what the naive service pays per request on top of
its model); `raw_asgi` is a bare ASGI callable, the like-for-like floor of the
service's observation fast path, which answers its hot POSTs outside Starlette.
Both are served by `python -m bench.serve trivial-fastapi|trivial-asgi --port N`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, Response

_ANSWER = b'{"ok":true}'
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"11")]


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(_ANSWER, media_type="application/json")

    @app.post("/{path:path}")
    async def trivial(request: Request) -> Response:
        await request.body()
        return Response(_ANSWER, media_type="application/json")

    return app


async def raw_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the whole body of any HTTP request, answers the constant; lifespan no-op."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _ANSWER})
