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
from fpar_models.data.dataset import normalize_flow, normalize_rgb, to_channels_first
from fpar_models.data.transforms import prepare_frames
from fpar_models.models import run_model
from fpar_models.runtime import Runtime


@dataclass
class Clip:
    """One request: its prepared input and what it asks for."""
    rgb: np.ndarray | None = None   # (T, S, S, 3) uint8
    flow: np.ndarray | None = None  # (K, 2*stack, S, S) uint8
    top_k: int = 5
    explain: bool = False


class Predictor:
    def __init__(self, path: Path, runtime: Runtime | None = None):
        self.runtime = runtime or Runtime.detect()
        model, meta = load_model(path)
        self.model = self.runtime.prepare(model).eval()
        self.config = meta["config"]
        self.classes: list[str] = meta["classes"]
        self.best_val_acc = meta.get("best_val_acc")

    @property
    def needs_rgb(self) -> bool:
        return self.config.uses_rgb

    @property
    def needs_flow(self) -> bool:
        return self.config.uses_flow

    def predict_frames(self, frames: list, *, top_k: int = 5, explain: bool = False) -> dict:
        """Frames (PIL images or paths) of any size and count, in temporal order -> answer."""
        images = [f if isinstance(f, Image.Image) else Image.open(f) for f in frames]
        clip = Clip(prepare_frames(images, self.config.frames, self.config.image_size), None, top_k, explain)
        return self.predict([clip])[0]

    def warm_up(self) -> None:
        """One prediction on a blank clip: the first pass is the slow one."""
        size, cfg = self.config.image_size, self.config
        rgb = np.zeros((cfg.frames, size, size, 3), np.uint8) if self.needs_rgb else None
        flow = np.zeros((cfg.model.eval_stacks, 2 * cfg.model.stack_size, size, size), np.uint8) \
            if self.needs_flow else None
        self.predict([Clip(rgb, flow)])

    @torch.inference_mode()
    def predict(self, clips: list[Clip]) -> list[dict]:
        """One batched forward pass; one answer per clip, in order."""
        device = self.runtime.device
        batch = {}
        if self.needs_rgb:
            batch["rgb"] = normalize_rgb(to_channels_first(np.stack([c.rgb for c in clips])).to(device))
        if self.needs_flow:
            batch["flow"] = normalize_flow(torch.from_numpy(np.stack([c.flow for c in clips])).to(device))
        with self.runtime.autocast():
            out = run_model(self.model, batch, heads=False)
        probs = torch.softmax(out.logits.float(), 1).cpu()
        values, indices = probs.topk(min(max(c.top_k for c in clips), len(self.classes)), 1)
        answers = []
        for i, clip in enumerate(clips):
            answer = {"top_k": [{"label": self.classes[j], "index": int(j), "probability": float(p)}
                                for p, j in zip(values[i, :clip.top_k], indices[i, :clip.top_k])]}
            if clip.explain and out.cam is not None:
                answer["cams"] = [base64.b64encode(cam.to_png(img)).decode()
                                  for img in cam.overlays(clip.rgb, out.cam[i])]
            answers.append(answer)
        return answers
