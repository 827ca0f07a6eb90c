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
from service.engine.redis_cluster import ClusterLink
from service.engine.redis_link import Link, RedisLink
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
        self._tasks: list[asyncio.Task[None]] = []
        self.redis: Link | None = None
        if settings.state_backend == "redis":
            assert settings.redis_url is not None  # the settings validated it
            # FORECAST_REDIS_CLUSTER: the URL is one node of a Cluster (split by slot).
            link = ClusterLink if settings.redis_cluster else RedisLink
            self.redis = link(settings.redis_url, settings.redis_timeout_seconds)

    @property
    def backend_ok(self) -> bool:
        """Readiness of the state backend (always true for memory)."""
        return self.redis is None or self.redis.health.ok

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        serving, self.found = await asyncio.to_thread(
            artifacts.discover, s.models_dir, s.providers, s.intra_op_threads
        )
        for name, loaded in serving.items():
            spec = loaded.spec
            model_metrics = self.metrics.for_model(name, spec.horizon)
            self.models[name] = ModelStreams(loaded, s, model_metrics, self.redis)
            self.metrics.model_info.labels(name, spec.version, loaded.runtime.provider).set(1)
            for k, mae in enumerate(spec.mae_by_horizon, start=1):
                self.metrics.offline_mae.labels(name, str(k)).set(mae)
            model_metrics.live_streams.set(0)
        if self._snapshots:
            self._restore()
        for model in self.models.values():
            model.batcher.start()
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._expire_loop()))
        if self._snapshots and s.snapshot_interval_seconds > 0:
            self._tasks.append(loop.create_task(self._snapshot_loop()))
        if self.redis is not None:
            self._tasks.append(loop.create_task(self._health_loop()))
        self.ready = bool(self.models)
        if not self.models:
            log.error("no model could be loaded from %s", s.models_dir)

    async def stop(self) -> None:
        self.ready = False
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for model in self.models.values():
            await model.batcher.stop()
        if self._snapshots and self.models:
            self._save()
        if self.redis is not None:
            await self.redis.close()
        for item in self.found:
            if isinstance(item, LoadedModel):
                item.runtime.close()

    def _stores(self) -> dict[str, StateStore]:
        return {model.key: model.store for model in self.models.values()}

    # -- the memory backend's snapshot ------------------------------------------------

    @property
    def _snapshots(self) -> bool:
        # With Redis, Redis holds the state: a file would only go stale.
        return self.settings.snapshot_path is not None and self.redis is None

    def _restore(self) -> None:
        path = self.settings.snapshot_path
        assert path is not None
        try:
            restored = snapshot.restore(path, self._stores())
        except snapshot.SnapshotError as exc:
            if not self.settings.snapshot_start_empty_on_error:
                raise
            log.error("%s; starting empty (FORECAST_SNAPSHOT_START_EMPTY_ON_ERROR)", exc)
            for model in self.models.values():
                model.store.drop([sid for sid, _ in model.store.streams()])
            return
        for model in self.models.values():
            if model.key in restored:
                model.after_restore()
        if restored:
            log.info("restored %d streams from %s", sum(restored.values()), path)

    def _save(self) -> None:
        path = self.settings.snapshot_path
        assert path is not None
        try:
            n = snapshot.save(path, self._stores())
            log.info("saved %d streams to %s", n, path)
        except Exception:
            log.exception("could not save the snapshot to %s", path)

    async def _snapshot_loop(self) -> None:
        """Save every interval: copy the rows on the loop (a consistent cut: every
        acknowledged step is in it or after it), write the file off the loop."""
        path = self.settings.snapshot_path
        assert path is not None
        while True:
            await asyncio.sleep(self.settings.snapshot_interval_seconds)
            try:
                arrays = snapshot.collect(self._stores())
                await asyncio.to_thread(snapshot.write, path, arrays)
            except Exception:
                log.exception("periodic snapshot to %s failed", path)

    async def _health_loop(self) -> None:
        assert self.redis is not None
        while True:
            await self.redis.ping()
            await asyncio.sleep(self.settings.redis_health_interval_seconds)

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
