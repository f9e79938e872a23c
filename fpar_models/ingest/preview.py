"""A picture of one ingested video, to check the flow and maps by eye: a row each of frames,
the raw flow (computed from the stored frames with DIS, camera motion included), the stored
flow (the warp flow the models train on), and the motion maps with the loader's 0.4
threshold outlined; 6-8 columns spread over the video. Works on hand-copied datasets too.

Flow is drawn as a colour wheel (hue: direction, white: still); both flow rows share one
scale, so the camera's motion is what the stored row lacks.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from matplotlib.figure import Figure

from fpar_models.data.gtea61 import RGB_DIR, numbered_images, visible_dirs
from fpar_models.ingest.flow import MAP_THRESHOLD, FlowEngine, colour_wheel, dequantise
from fpar_models.ingest.layout import VideoDirs
from fpar_models.plots import _png

MANIFEST = "manifest.json"


def _find(root: Path, video: str | None) -> tuple[str, str, str]:
    """(user, label, name) of `video` ("user/label/name"), or of the dataset's first video."""
    base = root / RGB_DIR
    if video is None:
        for user in visible_dirs(base) if base.is_dir() else []:
            for label in visible_dirs(user):
                for folder in visible_dirs(label):
                    return user.name, label.name, folder.name
        raise FileNotFoundError(f"{base}: the dataset has no videos")
    parts = video.strip("/").split("/")
    if len(parts) != 3 or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        raise ValueError(f"{video}: a video is named user/class/video")
    if not (base.joinpath(*parts)).is_dir():
        raise KeyError(f"{video}: no such video in the dataset")
    return parts[0], parts[1], parts[2]


def _options(root: Path) -> dict:
    try:
        return json.loads((root / MANIFEST).read_text()).get("options", {})
    except (OSError, ValueError):
        return {}  # a hand-copied dataset: the reference's bound


def _read(path: Path, flags: int = cv2.IMREAD_GRAYSCALE) -> np.ndarray:
    image = cv2.imread(str(path), flags)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    return image


def _columns(frames: int, columns: int) -> list[int]:
    """Frame numbers (1-based) spread over the video, each with a next frame where there is one."""
    last = max(1, frames - 1)
    return sorted({int(round(k)) for k in np.linspace(1, last, min(columns, last))})


def preview_png(root: Path, video: str | None = None, *, columns: int = 8) -> bytes:
    """The picture of `video` ("user/class/video"; None: the first) of the dataset at root."""
    root = Path(root)
    user, label, name = _find(root, video)
    dirs = VideoDirs.of(root, user, label, name)
    frames = numbered_images(dirs.rgb)
    if not frames:
        raise FileNotFoundError(f"{dirs.rgb}: the video has no frames")
    xs, ys, maps = numbered_images(dirs.flow_x), numbered_images(dirs.flow_y), numbered_images(dirs.mmaps)
    options = _options(root)
    bound = float(options.get("bound", 20))
    picked = _columns(len(frames), columns)
    numbers = list(frames)
    rgb = {n: cv2.cvtColor(_read(frames[n], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
           for k in picked for n in numbers[k - 1:k + 1]}
    engine = FlowEngine("dis", bound=bound, warp=False)
    raw = {k: engine.pair(rgb[numbers[k - 1]], rgb[numbers[k]]).raw for k in picked if k < len(numbers)}
    stored = {k: dequantise(_read(xs[k]), _read(ys[k]), bound) for k in picked if k in xs and k in ys}
    # one scale for both flow rows: most of the raw motion inside the wheel, at least 1 px
    magnitudes = [np.hypot(f[..., 0], f[..., 1]) for f in raw.values()]
    scale = max(1.0, float(np.percentile(np.concatenate([m.ravel() for m in magnitudes]), 99))) if raw else bound

    h, w = rgb[numbers[0]].shape[:2]
    cell = 1.9
    fig = Figure(figsize=(cell * len(picked) + 2.6, 4 * (cell * h / w + 0.3) + 0.8))
    axes = fig.subplots(4, len(picked) + 1, squeeze=False,
                        gridspec_kw={"width_ratios": [1] * len(picked) + [0.7]})
    warp = "warp flow" if options.get("warp", True) else "flow"
    rows = ("frame k", "raw flow k→k+1\n(DIS, camera in)", f"stored {warp}\nk→k+1", "motion map k+1\n(red: 0.4)")
    for c, k in enumerate(picked):
        cells = [rgb[numbers[k - 1]],
                 colour_wheel(raw[k], scale) if k in raw else None,
                 colour_wheel(stored[k], scale) if k in stored else None,
                 _read(maps[numbers[k]]) if k < len(numbers) and numbers[k] in maps else None]
        for r, image in enumerate(cells):
            ax = axes[r][c]
            _bare(ax)
            if image is None:
                ax.set_facecolor("0.92")
                ax.text(0.5, 0.5, "none", ha="center", va="center", transform=ax.transAxes, color="0.4")
            elif r == 3:
                ax.imshow(image, cmap="gray", vmin=0, vmax=255)
                if (image > MAP_THRESHOLD * 255).any() and (image <= MAP_THRESHOLD * 255).any():
                    ax.contour(image / 255.0, levels=[MAP_THRESHOLD], colors="red", linewidths=0.8)
            else:
                ax.imshow(image)
            ax.set_aspect("equal" if image is not None else "auto")
        axes[0][c].set_title(f"k = {numbers[k - 1]}", fontsize=9)
    for r, text in enumerate(rows):
        axes[r][0].set_ylabel(text, fontsize=9, rotation=0, ha="right", va="center", labelpad=8)
    _key(axes, scale)
    fig.suptitle(f"{user}/{label}/{name}: {len(frames)} frames, flow {len(xs)}, maps {len(maps)}"
                 f"  ·  flow colour: hue = direction, white = still, full colour = {scale:.1f} px/frame",
                 fontsize=10)
    fig.tight_layout()
    return _png(fig)


def _bare(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _key(axes, scale: float) -> None:
    """The colour wheel itself beside the flow rows: where each direction's hue is."""
    side = 65
    yy, xx = np.mgrid[-1:1:side * 1j, -1:1:side * 1j]
    disc = np.stack([xx, yy], -1) * scale
    wheel = colour_wheel(disc, scale)
    wheel[np.hypot(xx, yy) > 0.98] = 255  # (the rim itself would be drawn as "beyond the scale")
    for r in range(4):
        ax = axes[r][-1]
        _bare(ax)
        if r in (1, 2):
            ax.imshow(wheel, extent=(-scale, scale, scale, -scale))
            ax.set_title("→ x, ↓ y" if r == 1 else f"±{scale:.1f} px", fontsize=8)
