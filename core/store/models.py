"""The model registry: every trained model, newest first (records.ModelRecord)."""
from __future__ import annotations

import redis

from core.store import keys
from core.store.records import ModelRecord


class ModelRegistry:
    def __init__(self, client: redis.Redis):
        self.r = client

    def add(self, model: ModelRecord) -> None:
        pipe = self.r.pipeline()
        pipe.set(keys.model(model.id), model.model_dump_json())
        pipe.zadd(keys.MODELS, {model.id: model.created_at})
        pipe.execute()

    def get(self, model_id: str) -> ModelRecord | None:
        raw = self.r.get(keys.model(model_id))
        return ModelRecord.model_validate_json(raw) if raw else None

    def newest(self, limit: int = 1000) -> list[ModelRecord]:
        ids = [i.decode() for i in self.r.zrevrange(keys.MODELS, 0, limit - 1)]
        raws = self.r.mget([keys.model(i) for i in ids]) if ids else []
        return [ModelRecord.model_validate_json(r) for r in raws if r]

    def set_precision(self, model_id: str, precision: str) -> ModelRecord | None:
        """The precision predict workers serve the model in (they read it per batch)."""
        model = self.get(model_id)
        if model is not None:
            model = model.model_copy(update={"inference_precision": precision})
            self.r.set(keys.model(model_id), model.model_dump_json())
        return model

    def delete(self, model_id: str) -> None:
        pipe = self.r.pipeline()
        pipe.delete(keys.model(model_id))
        pipe.zrem(keys.MODELS, model_id)
        pipe.execute()
