"""The warm model cache: each configured model loaded once on first use, kept within a budget.

Models are looked up by name. A model not in memory is loaded on a worker thread (one load
at a time; concurrent requests for a model wait for the same load) and gets its own
:class:`~tinyedge.service.batcher.Batcher`. When the estimated memory of the loaded models
exceeds the budget, the least recently used ones are closed and dropped, never the one just
asked for nor the pinned default model (``/healthz`` reports it, most traffic uses it).
The estimate is the one each detector reports: how much the process's
memory grew while its interpreter was built (:mod:`.memory`; loads are serialised so the
number is the model's own), at least the file size.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from .batcher import Batcher
from .config import ModelSpec
from .detectors import Detector
from .metrics import Metrics

log = logging.getLogger(__name__)

Loader = Callable[[ModelSpec], Detector]
BatcherFactory = Callable[[str, Detector], Batcher]


class UnknownModel(Exception):
    """No model of that name is configured."""


@dataclass(frozen=True)
class WarmModel:
    """A loaded model and the batcher that feeds it."""

    spec: ModelSpec
    detector: Detector
    batcher: Batcher
    load_s: float
    loaded_at: float


class ModelCache:
    """Models by name, least recently used first, within ``budget_bytes``."""

    def __init__(
        self,
        specs: dict[str, ModelSpec],
        *,
        budget_bytes: int,
        pinned: str,
        loader: Loader,
        make_batcher: BatcherFactory,
        metrics: Metrics,
    ) -> None:
        self.specs = specs
        self.budget_bytes = budget_bytes
        self.pinned = pinned
        self._loader = loader
        self._make_batcher = make_batcher
        self._metrics = metrics
        self._warm: OrderedDict[str, WarmModel] = OrderedDict()
        self._load_lock = asyncio.Lock()  # one load at a time keeps memory estimates apart

    def warm(self) -> list[WarmModel]:
        """Loaded models, least recently used first."""
        return list(self._warm.values())

    @property
    def used_bytes(self) -> int:
        return sum(m.detector.memory_bytes for m in self._warm.values())

    def adopt(self, name: str, detector: Detector, load_s: float) -> WarmModel:
        """Put an already loaded detector in the cache (the process loaded it before serving)."""
        return self._install(self.specs[name], detector, load_s)

    async def get(self, name: str) -> WarmModel:
        """The warm model called ``name``, loading it first if needed."""
        if name not in self.specs:
            raise UnknownModel(name)
        model = self._warm.get(name)
        if model is not None:
            self._warm.move_to_end(name)
            return model
        async with self._load_lock:
            model = self._warm.get(name)
            if model is None:
                spec = self.specs[name]
                started = time.perf_counter()
                detector = await asyncio.to_thread(self._loader, spec)
                model = self._install(spec, detector, time.perf_counter() - started)
                await self._evict(keep=name)
        self._warm.move_to_end(name)
        return model

    def _install(self, spec: ModelSpec, detector: Detector, load_s: float) -> WarmModel:
        batcher = self._make_batcher(spec.name, detector)
        batcher.start()
        model = WarmModel(spec, detector, batcher, load_s, time.time())
        self._warm[spec.name] = model
        self._metrics.loads.inc(model=spec.name)
        self._metrics.load_seconds.inc(load_s, model=spec.name)
        self._metrics.loaded.set(1, model=spec.name)
        self._metrics.cache_bytes.set(self.used_bytes)
        log.info(
            "model %s loaded in %.2f s (%.1f MB estimated)",
            spec.name,
            load_s,
            detector.memory_bytes / 1e6,
        )
        return model

    async def _evict(self, keep: str) -> None:
        while self.used_bytes > self.budget_bytes:
            victim = next((n for n in self._warm if n not in (keep, self.pinned)), None)
            if victim is None:
                log.warning(
                    "models %s need %.1f MB, over the %.1f MB cache budget",
                    ", ".join(self._warm),
                    self.used_bytes / 1e6,
                    self.budget_bytes / 1e6,
                )
                return
            model = self._warm.pop(victim)
            self._metrics.evictions.inc(model=victim)
            self._metrics.loaded.set(0, model=victim)
            self._metrics.cache_bytes.set(self.used_bytes)
            log.info("model %s evicted to stay within the cache budget", victim)
            await model.batcher.close()

    async def close(self) -> None:
        while self._warm:
            _, model = self._warm.popitem(last=False)
            await model.batcher.close()
