"""Shared helpers of the unit tests."""
from fpar_models.presets import resolve_config

SMALL = {"pretrained": "none", "image_size": 64, "frames": 4, "batch_size": 4,
         "model": {"mem_size": 64}}


def small_config(preset: str = "egornn-attention", **overrides):
    """A preset at test size: 64 px, 4 frames, a narrow ConvLSTM, random init."""
    request = {"preset": preset, "dataset": "synthetic", **SMALL}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(request.get(key), dict):
            value = {**request[key], **value}
        request[key] = value
    return resolve_config(request)
