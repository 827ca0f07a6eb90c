"""The served models: load, start and stop them, expire idle streams, describe them.

Built from Settings by the app factory and started/stopped by the app lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from service.engine import artifacts, snapshot
from service.engine.artifacts import BrokenModel, LoadedModel
from service.engine.model import ModelStreams
from service.engine.store import StateStore
from service.errors import ModelNotFound, ModelUnavailable, NotReady
from service.metrics import Metrics
from service.settings import Settings

log = logging.getLogger(__name__)


class Registry:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.models: dict[str, ModelStreams] = {}
        self.found: list[LoadedModel | BrokenModel] = []
        self.ready = False
        self._expiry: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        if s.state_backend != "memory":
            raise RuntimeError(
                f"state_backend={s.state_backend!r} is not implemented yet; use 'memory'"
            )
        serving, self.found = await asyncio.to_thread(
            artifacts.discover, s.models_dir, s.providers, s.intra_op_threads
        )
        for name, loaded in serving.items():
            spec = loaded.spec
            model_metrics = self.metrics.for_model(name, spec.horizon)
            self.models[name] = ModelStreams(loaded, s, model_metrics)
            self.metrics.model_info.labels(name, spec.version, loaded.runtime.provider).set(1)
            for k, mae in enumerate(spec.mae_by_horizon, start=1):
                self.metrics.offline_mae.labels(name, str(k)).set(mae)
            model_metrics.live_streams.set(0)
        if s.snapshot_path is not None:
            try:
                restored = snapshot.restore(s.snapshot_path, self._stores())
            except Exception:
                log.exception("could not restore snapshot %s; starting empty", s.snapshot_path)
            else:
                for model in self.models.values():
                    if model.key in restored:
                        model.after_restore()
                if restored:
                    log.info("restored %d streams from %s", sum(restored.values()), s.snapshot_path)
        for model in self.models.values():
            model.batcher.start()
        self._expiry = asyncio.get_running_loop().create_task(self._expire_loop())
        self.ready = bool(self.models)
        if not self.models:
            log.error("no model could be loaded from %s", s.models_dir)

    async def stop(self) -> None:
        self.ready = False
        if self._expiry is not None:
            self._expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry
        for model in self.models.values():
            await model.batcher.stop()
        path = self.settings.snapshot_path
        if path is not None and self.models:
            try:
                n = snapshot.save(path, self._stores())
                log.info("saved %d streams to %s", n, path)
            except Exception:
                log.exception("could not save the snapshot to %s", path)
        for item in self.found:
            if isinstance(item, LoadedModel):
                item.runtime.close()

    def _stores(self) -> dict[str, StateStore]:
        return {model.key: model.store for model in self.models.values()}

    async def _expire_loop(self) -> None:
        ttl = self.settings.stream_ttl_seconds
        interval = min(self.settings.expiry_interval_seconds, ttl / 2)
        while True:
            await asyncio.sleep(interval)
            for model in self.models.values():
                try:
                    n = model.expire(ttl)
                except Exception:
                    log.exception("expiry sweep failed for %s", model.name)
                    continue
                if n:
                    log.info("expired %d idle streams of %s", n, model.name)

    # -- lookups ---------------------------------------------------------------------

    def model(self, name: str) -> ModelStreams:
        model = self.models.get(name)
        if model is not None:
            return model
        if not self.ready and not self.found:
            raise NotReady("models are still loading")
        for item in self.found:
            if isinstance(item, BrokenModel) and item.name == name:
                raise ModelUnavailable(f"model: {name!r} failed to load: {item.error}")
        raise ModelNotFound(f"model: no model named {name!r}")

    def describe(self, item: LoadedModel | BrokenModel) -> dict[str, Any]:
        if isinstance(item, BrokenModel):
            return {
                "name": item.name,
                "version": item.version,
                "status": "error",
                "error": item.error,
            }
        serving = self.models.get(item.spec.name)
        is_serving = serving is not None and serving.runtime is item.runtime
        manifest = dict(item.spec.manifest)
        body: dict[str, Any] = {
            "name": item.spec.name,
            "version": item.spec.version,
            "status": "serving" if is_serving else "superseded",
            "provider": item.runtime.provider,
        }
        if is_serving and serving is not None:
            body["live_streams"] = len(serving.store)
        body.update({k: v for k, v in manifest.items() if k not in body})
        return body

    def list_models(self) -> list[dict[str, Any]]:
        return [self.describe(item) for item in self.found]

    def describe_model(self, name: str) -> dict[str, Any]:
        versions = [i for i in self.found if _name_of(i) == name]
        if not versions:
            raise ModelNotFound(f"model: no model named {name!r}")
        model = self.models.get(name)
        chosen: LoadedModel | BrokenModel = versions[-1]
        if model is not None:
            chosen = next(
                i for i in versions if isinstance(i, LoadedModel) and i.runtime is model.runtime
            )
        body = self.describe(chosen)
        body["versions"] = [
            {"version": i.spec.version if isinstance(i, LoadedModel) else i.version,
             "status": self.describe(i)["status"]}
            for i in versions
        ]  # fmt: skip
        return body


def _name_of(item: LoadedModel | BrokenModel) -> str:
    return item.spec.name if isinstance(item, LoadedModel) else item.name
