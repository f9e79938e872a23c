"""Trained models kept loaded, a few per process, least recently used out first."""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from fpar_models.compute import Compute
from fpar_models.config import TrainConfig
from fpar_models.serving import Predictor
from fpar_models.serving.graph import dataset_clips, sample_inputs
from fpar_models.serving.precision import CALIBRATION_CLIPS, EVAL_CLIPS
from service.jobs import JobStore
from service.settings import Settings

log = logging.getLogger("fpar.worker")


class ModelCache:
    def __init__(self, store: JobStore, settings: Settings, compute: Compute | None = None):
        self.store, self.settings = store, settings
        self._compute = compute
        self._models: OrderedDict[str, Predictor] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def compute(self) -> Compute:
        if self._compute is None:  # created in the process that runs models, never before a fork
            self._compute = Compute.detect()
        return self._compute

    def get(self, model_id: str) -> Predictor:
        with self._lock:
            meta = self.store.get_model(model_id)  # read each time: its owner may change its precision
            precision = (meta or {}).get("inference_precision", "fp32")
            if model_id in self._models and self._models[model_id].precision == precision:
                self._models.move_to_end(model_id)
                return self._models[model_id]
            if meta is None:
                raise KeyError(f"model '{model_id}' is not registered")
            cfg = TrainConfig.model_validate(meta["config"])
            data, classes = self.settings.data_dir, meta["classes"]
            reduced = {}
            if precision != "fp32":  # decoded only when needed: cost on validation, int8 calibration on training
                def calibration():
                    training = dataset_clips(cfg, classes, data, cfg.train_users, CALIBRATION_CLIPS)
                    return training[0] if training else None

                reduced = {"evaluation": lambda: dataset_clips(cfg, classes, data, cfg.val_users, EVAL_CLIPS),
                           "calibration": calibration}
            predictor = Predictor(self.settings.model_dir / meta["path"], self.compute,
                                  inference=self.settings.inference, samples=sample_inputs(cfg, classes, data),
                                  precision=precision, **reduced)
            log.info("model %s served by %s%s", model_id, predictor.choice.backend,
                     f" ({predictor.choice.reason})" if predictor.choice.reason else "")
            self._models[model_id] = predictor
            while len(self._models) > self.settings.model_cache:
                evicted, _ = self._models.popitem(last=False)
                log.info("model %s evicted from the cache", evicted)
            return predictor

    def served(self) -> dict[str, dict]:
        """Each loaded model's runtime and how it was chosen (the heartbeat carries it; no
        lock: a heartbeat must not wait for a model that is being compiled)."""
        return {model_id: p.choice.as_dict() for model_id, p in list(self._models.items())}

    def preload(self) -> None:
        """Load the newest models at start, and run each once, so the first request is
        not the slow one (kernels are chosen and buffers allocated on a first pass)."""
        for meta in reversed(self.store.models(limit=self.settings.model_cache)):
            try:
                self.get(meta["id"]).warm_up()
            except Exception:
                log.warning("could not preload model %s", meta["id"], exc_info=True)
