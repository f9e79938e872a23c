"""Trained models kept loaded, a few per process, least recently used out first."""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from core.object_store import ObjectStore
from core.settings import Settings
from core.store.models import ModelRegistry
from core.store.records import ModelRecord
from fpar_models.compute import Compute
from fpar_models.serving import Predictor
from fpar_models.serving.graph import dataset_clips, sample_inputs
from fpar_models.serving.precision import CALIBRATION_CLIPS, EVAL_CLIPS
from fpar_models.serving.predictor import COMPILED

log = logging.getLogger("fpar.worker")


class ModelCache:
    def __init__(self, models: ModelRegistry, settings: Settings, store: ObjectStore | None = None,
                 compute: Compute | None = None):
        self.registry, self.settings = models, settings
        self.store = store or settings.open_model_store()
        self._compute = compute
        self._models: OrderedDict[str, Predictor] = OrderedDict()
        self._lock = threading.Lock()
        # one model call at a time in the process: the batcher's thread and a Celery task
        # (a timeline, an analysis) may both want one, and a runtime may not be thread-safe
        self.exclusive = threading.Lock()

    @property
    def compute(self) -> Compute:
        if self._compute is None:  # created in the process that runs models, never before a fork
            self._compute = Compute.detect()
        return self._compute

    def get(self, model_id: str) -> Predictor:
        with self._lock:
            model = self.registry.get(model_id)  # read each time: its owner may change its precision
            precision = model.inference_precision if model else "fp32"
            if model_id in self._models and self._models[model_id].precision == precision:
                self._models.move_to_end(model_id)
                return self._models[model_id]
            if model is None:
                raise KeyError(f"model '{model_id}' is not registered")
            predictor = self._load(model)
            self._models[model_id] = predictor
            while len(self._models) > self.settings.model_cache:
                evicted, _ = self._models.popitem(last=False)
                log.info("model %s evicted from the cache", evicted)
            return predictor

    def _load(self, model: ModelRecord) -> Predictor:
        cfg, classes, data = model.config, model.classes, self.settings.data_dir
        self.settings.data.mirror(cfg.dataset)  # its clips verify the compiled graph (random ones if gone)
        reduced = {}
        if model.inference_precision != "fp32":  # decoded only when needed: cost on validation, int8 calibration
            def calibration():
                training = dataset_clips(cfg, classes, data, cfg.train_users, CALIBRATION_CLIPS)
                return training[0] if training else None

            reduced = {"evaluation": lambda: dataset_clips(cfg, classes, data, cfg.val_users, EVAL_CLIPS),
                       "calibration": calibration}
        checkpoint = self.store.path(model.path)
        compiled, graphs = checkpoint.parent / COMPILED, model.path.rpartition("/")[0] + f"/{COMPILED}/"
        self.store.pull(graphs, compiled)  # what another host exported, quantised and measured
        predictor = Predictor(checkpoint, self.compute, inference=self.settings.inference,
                              samples=sample_inputs(cfg, classes, data), precision=model.inference_precision,
                              **reduced)
        if compiled.is_dir():
            self.store.push(compiled, graphs)  # what this one added (not OpenVINO's blobs: they are per CPU)
        log.info("model %s served by %s%s", model.id, predictor.choice.backend,
                 f" ({predictor.choice.reason})" if predictor.choice.reason else "")
        return predictor

    def served(self) -> dict[str, dict]:
        """Each loaded model's runtime and how it was chosen (the heartbeat carries it; no
        lock: a heartbeat must not wait for a model that is being compiled)."""
        return {model_id: p.choice.as_dict() for model_id, p in list(self._models.items())}

    def preload(self) -> None:
        """Load the newest models at start, and run each once, so the first request is
        not the slow one (kernels are chosen and buffers allocated on a first pass)."""
        for model in reversed(self.registry.newest(limit=self.settings.model_cache)):
            try:
                self.get(model.id).warm_up()
            except Exception:
                log.warning("could not preload model %s", model.id, exc_info=True)
