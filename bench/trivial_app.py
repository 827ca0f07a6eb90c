"""The HTTP floor: a FastAPI POST that reads the body and answers a constant.

Same server settings as `python -m service`: uvicorn, uvloop, httptools, one worker,
no access log. Run: `python -m bench.trivial_app --port 8001`.
"""

from __future__ import annotations

import argparse

from fastapi import FastAPI, Request, Response

from bench import serve

_ANSWER = b'{"ok":true}'


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    serve.run(create_app(), args.port)


if __name__ == "__main__":
    main()
