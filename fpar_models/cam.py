"""Class activation maps drawn over the frames the model saw: the picture of what
the attention looked at, per frame, as PNG files."""
from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def heatmaps(cams: torch.Tensor, size: int) -> np.ndarray:
    """(T, s, s) CAMs -> (T, size, size) in [0, 1], each frame scaled to its own range."""
    up = F.interpolate(cams.float().unsqueeze(1), size=(size, size), mode="bilinear",
                       align_corners=False).squeeze(1)
    lo = up.amin((1, 2), keepdim=True)
    span = up.amax((1, 2), keepdim=True) - lo
    # a flat map (one cell, or no preference) has no hot region: do not blow rounding noise up into one
    flat = span <= 1e-6 * (lo.abs() + 1)
    return torch.where(flat, torch.zeros_like(up), (up - lo) / span.clamp_min(1e-12)).cpu().numpy()


def colormap(x: np.ndarray) -> np.ndarray:
    """[0, 1] -> RGB uint8 on a blue-cyan-yellow-red ramp (the usual 'jet' look)."""
    r = np.clip(1.5 - np.abs(4 * x - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * x - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * x - 1), 0, 1)
    return (np.stack([r, g, b], -1) * 255).astype(np.uint8)


def overlays(frames: np.ndarray, cams: torch.Tensor, strength: float = 0.65) -> list[np.ndarray]:
    """frames (T, S, S, 3) uint8 + CAMs (T, s, s) -> T images (S, S, 3) uint8: the colour map
    laid over each frame in proportion to the activation, so the frame stays visible where
    the model did not look and the hot regions stand out (an even blend hid the frame)."""
    heat = heatmaps(cams, frames.shape[1])
    weight = strength * heat[..., None]
    blended = (1 - weight) * frames.astype(np.float32) + weight * colormap(heat).astype(np.float32)
    return list(blended.round().astype(np.uint8))


def to_png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()
