"""Where ImageNet weights for ResNet-34 come from: a local file, never the network.
Torch-free, so the gateway can refuse `pretrained: "imagenet"` when there is none."""
from __future__ import annotations

import os
from pathlib import Path

# torchvision's current and former file names for ResNet-34 ImageNet weights
FILENAMES = ("resnet34-b627a593.pth", "resnet34-333f7ec4.pth", "resnet34.pth")


def search_dirs(weights_dir: str | os.PathLike | None = None) -> list[Path]:
    dirs = [weights_dir or os.environ.get("FPAR_WEIGHTS_DIR")]
    torch_home = os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")
    dirs.append(Path(torch_home) / "hub" / "checkpoints")
    return [Path(d) for d in dirs if d]


def find_imagenet_weights(weights_dir: str | os.PathLike | None = None) -> Path | None:
    for folder in search_dirs(weights_dir):
        for name in FILENAMES:
            if (folder / name).is_file():
                return folder / name
    return None


def missing_weights_message(weights_dir: str | os.PathLike | None = None) -> str:
    where = ", ".join(str(d) for d in search_dirs(weights_dir))
    return (f"pretrained 'imagenet' needs a local ResNet-34 ImageNet file ({FILENAMES[0]}) "
            f"in one of: {where}; set FPAR_WEIGHTS_DIR, or use pretrained 'none'")
