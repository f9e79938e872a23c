"""A trained model answering requests: `Predictor(path).predict([Clip(rgb=...)])`.

    predictor.py  Predictor, Clip: load a model once, answer batches of clips (top-k, CAMs)
    graph.py      the serving graph: uint8 frames in, probabilities and CAMs out, as ONNX too
    runtimes.py   the graph run by PyTorch, ONNX Runtime or OpenVINO, verified against PyTorch
    precision.py  opt-in bf16/int8 serving and its measured cost
    isolated.py   an OpenVINO graph run in a child process of its own (torch-free)
    quantise.py   NNCF int8 quantisation, run as its own process by precision.py
    export.py     deployable artefacts: ONNX + Triton config, OpenVINO IR, TorchScript
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fpar_models.serving.predictor import Clip, Predictor

__all__ = ["Clip", "Predictor"]


def __getattr__(name: str):
    # Imported on first use, not with the package: the OpenVINO child (isolated.py) and the
    # NNCF child (quantise.py) import modules of this package and must not load torch.
    if name in __all__:
        from fpar_models.serving import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
