"""Fixtures: tiny real artifacts built once per session, and real uvicorn servers."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis_helpers import RedisServer
from svc_helpers import LiveServer, make_settings


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.tiny import make_tiny_artifact

    root = tmp_path_factory.mktemp("models")
    make_tiny_artifact(root, "sensor")
    make_tiny_artifact(root, "stock")
    return root


@pytest.fixture
def own_models(models_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the models dir that a test may break."""
    dest = tmp_path / "models"
    shutil.copytree(models_dir, dest)
    return dest


@pytest.fixture
def serve(models_dir: Path, tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """serve(**settings) -> a started LiveServer; all are stopped after the test."""
    started: list[LiveServer] = []

    def start(models: Path | None = None, **overrides: Any) -> LiveServer:
        server = LiveServer(make_settings(models or models_dir, tmp_path, **overrides))
        started.append(server.start())
        return server

    yield start
    for server in started:
        if server.thread.is_alive():
            server.stop()


@pytest.fixture
def server(serve: Callable[..., LiveServer]) -> LiveServer:
    return serve()


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server on a free port, stopped by pid after the test."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    if server.proc is not None:
        server.resume()  # a paused server would not stop
        server.stop()
