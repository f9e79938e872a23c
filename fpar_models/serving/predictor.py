"""Inference on a trained model: clips in (frames already sampled and cropped by
`fpar_models.data.transforms.prepare_frames`), ranked actions out, CAMs on request.
Several clips run as one batch; that is what the predict worker's batcher feeds."""
from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fpar_models import cam
from fpar_models.checkpoint import load_model
from fpar_models.compute import Compute
from fpar_models.data.transforms import prepare_frames
from fpar_models.serving.graph import example_inputs, input_names
from fpar_models.serving.precision import Calibration, Evaluation
from fpar_models.serving.runtimes import serve

COMPILED = "compiled"  # beside a model's checkpoint: its serving graphs, int8 graphs and their measured costs


@dataclass
class Clip:
    """One request: its prepared input and what it asks for."""
    rgb: np.ndarray | None = None   # (T, S, S, 3) uint8
    flow: np.ndarray | None = None  # (K, 2*stack, S, S) uint8
    top_k: int = 5
    explain: bool = False


class Predictor:
    """A trained model ready to answer: loaded once, served by the runtime `inference`
    chooses (see fpar_models.serving.runtimes), verified against eager PyTorch on `samples`."""

    def __init__(self, path: Path, compute: Compute | None = None, *, inference: str = "torch",
                 samples: dict[str, np.ndarray] | None = None, precision: str = "fp32",
                 evaluation: Evaluation | None = None, calibration: Calibration | None = None):
        self.compute = compute or Compute.detect()
        model, meta = load_model(path)
        self.model = self.compute.prepare(model).eval()
        self.config = meta["config"]
        self.classes: list[str] = meta["classes"]
        self.best_val_acc = meta.get("best_val_acc")
        samples = samples if samples is not None else random_clips(self.config)
        self.precision = precision  # asked for; self.choice.precision is what serves
        self.engine, self.choice = serve(self.model, self.config, self.compute, requested=inference,
                                         cache_dir=Path(path).parent / COMPILED, samples=samples,
                                         precision=precision, evaluation=evaluation, calibration=calibration)

    @property
    def needs_rgb(self) -> bool:
        return self.config.uses_rgb

    @property
    def needs_flow(self) -> bool:
        return self.config.uses_flow

    @property
    def cpu_elsewhere_s(self) -> float:
        """CPU seconds the model spent outside this process (an isolated runtime's child)."""
        return getattr(self.engine, "child_cpu_s", 0.0)

    def predict_frames(self, frames: list, *, top_k: int = 5, explain: bool = False) -> dict:
        """Frames (PIL images or paths) of any size and count, in temporal order -> answer."""
        images = [f if isinstance(f, Image.Image) else Image.open(f) for f in frames]
        cfg = self.config
        clip = Clip(prepare_frames(images, cfg.frames, cfg.image_size, cfg.sampling), None, top_k, explain)
        return self.predict([clip])[0]

    def warm_up(self) -> None:
        """One prediction on a blank clip: the first pass is the slow one."""
        self.engine.run(random_clips(self.config, 1))

    def predict(self, clips: list[Clip]) -> list[dict]:
        """One batched pass; one answer per clip, in order."""
        probs, cams = self.run(clips)
        answers = []
        for i, clip in enumerate(clips):
            answer = {"top_k": self.ranked(probs[i], clip.top_k)}
            if clip.explain and cams is not None:
                answer["cams"] = [base64.b64encode(cam.to_png(img)).decode()
                                  for img in cam.overlays(clip.rgb, torch.from_numpy(cams[i]))]
            answers.append(answer)
        return answers

    def run(self, clips: list[Clip]) -> tuple[np.ndarray, np.ndarray | None]:
        """One batched pass: the class probabilities (B, classes) and, for RGB models, the CAMs."""
        inputs = {}
        if self.needs_rgb:
            inputs["frames"] = np.stack([c.rgb for c in clips])
        if self.needs_flow:
            inputs["flow"] = np.stack([c.flow for c in clips])
        outputs = self.engine.run(inputs)
        return outputs[0], (outputs[1] if len(outputs) > 1 else None)

    def ranked(self, probabilities: np.ndarray, top_k: int) -> list[dict]:
        """The top_k classes of one clip's probabilities, most probable first."""
        order = np.argsort(-probabilities, kind="stable")[:min(top_k, len(self.classes))]
        return [{"label": self.classes[j], "index": int(j), "probability": float(probabilities[j])} for j in order]


def random_clips(cfg, count: int = 2) -> dict[str, np.ndarray]:
    """Sample inputs when no real clips are at hand (seeded: the same every time)."""
    return {name: tensor.numpy() for name, tensor in zip(input_names(cfg), example_inputs(cfg, count))}
