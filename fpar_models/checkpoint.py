"""Checkpoints that describe themselves: the config that built the model and the class
names travel with the weights. Written whole or not at all (fpar_models.files), read
with `weights_only=True`, so loading one never runs code from it."""
from __future__ import annotations

import errno
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fpar_models.config import TrainConfig
from fpar_models.files import atomic_path
from fpar_models.models import build_model

MODEL_FORMAT = "fpar-model/1"
TRAINING_FORMAT = "fpar-training/1"


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save, whole or not at all: a crash or a full disk leaves the previous file.
    A full disk is reported as such (torch's writer says only "unexpected pos")."""
    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            with open(tmp, "wb") as f:
                torch.save(obj, f)
        except (OSError, RuntimeError) as e:
            if shutil.disk_usage(path.parent).free < (1 << 20):  # measured before the partial file goes
                raise OSError(errno.ENOSPC, f"no space left on the device holding {path.parent} while writing "
                              f"{path.name}; the previous {path.name} is intact", str(path)) from e
            raise


def load(path: Path, expected_format: str) -> dict[str, Any]:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # pickle errors, truncated files, foreign objects
        raise ValueError(f"{path}: not a readable checkpoint ({e})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != expected_format:
        raise ValueError(f"{path}: not an {expected_format} checkpoint")
    return ckpt


def model_file(model: nn.Module, cfg: TrainConfig, classes: list[str], **meta: Any) -> dict[str, Any]:
    return {"format": MODEL_FORMAT, "config": cfg.model_dump(mode="json"), "classes": list(classes),
            "state_dict": model.state_dict(), **meta}


def training_file(model: nn.Module, cfg: TrainConfig, classes: list[str], **meta: Any) -> dict[str, Any]:
    """A checkpoint of a run in progress (last.pt, the stages' best): the weights under
    "model", with the config and classes that describe them, as a model file has them."""
    return {"format": TRAINING_FORMAT, "config": cfg.model_dump(mode="json"), "classes": list(classes),
            "model": model.state_dict(), **meta}


def load_model(path: Path, *, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """A trained model ready for inference, and its checkpoint's metadata."""
    ckpt = load(Path(path), MODEL_FORMAT)
    cfg = TrainConfig.stored(ckpt["config"])
    # the weights come from the checkpoint: do not look for ImageNet files
    model = build_model(cfg.model_copy(update={"pretrained": "none"}), len(ckpt["classes"]))
    model.load_state_dict(ckpt.pop("state_dict"))
    model.to(device).eval()
    ckpt["config"] = cfg
    return model, ckpt
