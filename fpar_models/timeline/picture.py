"""timeline.png: a video's segments of actions as one coloured strip, the top class's
probability beneath it and a few thumbnails above it at their times.

    title
    [thumb]      [thumb]          [thumb]      small frames, joined to their times
    ████████░░░░██████████████░░░██████████   segments; light grey: background
    ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~   top-class probability (0..1), threshold dashed
    0:00      0:05      0:10      0:15        m:ss, or h:mm:ss for an hour or more
    ■ class  ■ class  ■ background           the classes that appear

The same picture has to read for 10 seconds with 3 segments and for an hour with 300, so
a label is written only on a segment wide enough to hold it (the legend names the rest),
and the layout is fixed in inches, not left to tight_layout: the figure is always 1200 px
wide, and text can be measured against segment widths before drawing.
Matplotlib's object API on the Agg canvas, as fpar_models.plots; torch-free.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FuncFormatter, MultipleLocator

from fpar_models.plots import _png

BACKGROUND = "0.9"
CURVE = "0.15"
THRESHOLD = "#b2182b"
LABEL_BOX = {"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 1}
CURVE_POINTS = 500  # bins across the axis once the windows outnumber them: ~2 px each
WIDTH = 12.0  # inches: 1200 px at the project's 100 dpi
LEFT, RIGHT = 0.95, 0.3  # margins, inches
TITLE, THUMBS, STRIP, GAP, CURVE_H, AXIS, LEGEND_ROW = 0.45, 1.25, 0.6, 0.08, 1.4, 0.5, 0.19
THUMB_H, THUMB_MAX_W, THUMB_GAP = 0.85, 1.4, 0.12  # a thumbnail: 85 px high, small beside the strip
THUMB_LINE, TITLE_GAP = 0.18, 0.1  # the line down to the strip; air under the title
MAX_THUMBS = 8
LABEL_PAD_PX = 4
STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)


def _palette() -> list[tuple[float, ...]]:
    """One fixed list, so a class index has the same colour in every picture: tab10, then
    tab20's light shades, then tab20b/c's darker shades. Greys are left out (they would read
    as background) and so are the lightest shades (too close to it)."""
    tab10, tab20 = colormaps["tab10"].colors, colormaps["tab20"].colors
    tab20b, tab20c = colormaps["tab20b"].colors, colormaps["tab20c"].colors
    return ([c for i, c in enumerate(tab10) if i != 7] + [tab20[i] for i in range(1, 20, 2) if i != 15]
            + [tab20b[i] for i in range(20) if i % 4 != 3] + [tab20c[i] for i in range(16) if i % 4 != 3])


PALETTE = _palette()


def class_colour(index: int) -> tuple[float, ...]:
    return PALETTE[index % len(PALETTE)]


def clock(seconds: float, *, hours: bool = False, decimals: int = 0) -> str:
    """75 -> '1:15'; with hours, 3725 -> '1:02:05'; decimals=1: '0:01.5'."""
    scale = 10 ** decimals
    whole, fraction = divmod(round(max(seconds, 0) * scale), scale)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    sec = f"{s:02d}" + (f".{fraction:0{decimals}d}" if decimals else "")
    return f"{h}:{m:02d}:{sec}" if hours else f"{60 * h + m}:{sec}"


def _span(seconds: float) -> str:
    """A length of time in words: '7.2 s', '2 min 24 s'."""
    if seconds < 60:
        return f"{seconds:.2g} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, sec = divmod(round(seconds), 60)
    return f"{minutes} min {sec} s" if sec else f"{minutes} min"


def tick_step(duration_s: float, most: int = 12) -> float:
    """The first round step (1 s, 5 s, 1 min, 5 min, ...) giving at most `most` ticks."""
    return next((s for s in STEPS if duration_s / s <= most), math.ceil(duration_s / most / 3600) * 3600)


def place(centres: Sequence[float], widths: Sequence[float], lo: float, hi: float, gap: float) -> list[float]:
    """Left edges for boxes in order, each as near to centred on its centre as the others
    allow, gap apart and inside [lo, hi] (which must hold them all)."""
    lefts = [c - w / 2 for c, w in zip(centres, widths)]
    edge = lo
    for i, w in enumerate(widths):  # push right past the previous box
        lefts[i] = max(lefts[i], edge)
        edge = lefts[i] + w + gap
    edge = hi
    for i in reversed(range(len(widths))):  # then back left from the right end
        lefts[i] = min(lefts[i], edge - widths[i])
        edge = lefts[i] - gap
    return lefts


def timeline_png(segments: Sequence[dict], curve_times: Sequence[float], curve_probs: Sequence[float],
                 duration_s: float, classes: Sequence[str], thumbnails: Sequence[tuple[float, np.ndarray]],
                 title: str, *, threshold: float = 0.0) -> bytes:
    """segments: [{"start", "end", "label", ...}]; curve: the top class's probability at each
    window centre; thumbnails: (time_s, uint8 (H, W, 3)) pairs, up to 8 drawn."""
    duration_s = max(float(duration_s), 1e-3)
    index = {name: i for i, name in enumerate(classes)}
    for s in segments:  # a label the model does not list still gets a colour of its own
        index.setdefault(s["label"], len(index))
    present = {s["label"] for s in segments}
    handles = [Patch(facecolor=class_colour(i), label=name) for name, i in index.items() if name in present]
    covered = sum(s["end"] - s["start"] for s in segments)
    if covered < duration_s - 1e-3:
        handles.append(Patch(facecolor=BACKGROUND, edgecolor="0.6", linewidth=0.5, label="background"))
    axis_w = WIDTH - LEFT - RIGHT
    longest = max((len(h.get_label()) for h in handles), default=10)
    columns = max(1, min(len(handles), int(axis_w // (0.35 + 0.075 * longest))))
    rows = math.ceil(len(handles) / columns)
    thumbs = _choose(thumbnails, axis_w)
    heights = [TITLE, THUMBS if thumbs else 0.0, STRIP, GAP, CURVE_H, AXIS, rows * LEGEND_ROW + 0.15]
    height = sum(heights)
    fig = Figure(figsize=(WIDTH, height))

    def box(top_in: float, h_in: float) -> list[float]:  # an axes rect from inches below the top
        return [LEFT / WIDTH, 1 - (top_in + h_in) / height, axis_w / WIDTH, h_in / height]

    strip_top = sum(heights[:2])
    strip = fig.add_axes(box(strip_top, STRIP))
    curve = fig.add_axes(box(strip_top + STRIP + GAP, CURVE_H), sharex=strip)
    strip.set_xlim(0, duration_s)  # before the strip: its labels are measured against this scale
    _draw_strip(fig, strip, segments, index)
    _draw_curve(curve, curve_times, curve_probs, threshold, duration_s)
    _time_axis(curve, duration_s)
    if thumbs:
        _draw_thumbs(fig.add_axes(box(TITLE + TITLE_GAP, THUMBS - TITLE_GAP)), thumbs, duration_s)
    fig.suptitle(title, fontsize=11, y=1 - TITLE / 2 / height, va="center")
    if handles:
        fig.legend(handles=handles, loc="upper left", ncols=columns, fontsize=8, frameon=False,
                   bbox_to_anchor=(LEFT / WIDTH - 0.005, 1 - (strip_top + STRIP + GAP + CURVE_H + AXIS) / height),
                   handlelength=1.2, columnspacing=1.4, borderaxespad=0)
    return _png(fig)


def _draw_strip(fig: Figure, ax, segments: Sequence[dict], index: dict[str, int]) -> None:
    ax.set_facecolor(BACKGROUND)
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    ax.set_ylabel("actions", rotation=0, ha="right", va="center", fontsize=9)
    ax.tick_params(axis="x", labelbottom=False, length=0)
    for spine in ax.spines.values():
        spine.set_color("0.6")
    spans: dict[int, list[tuple[float, float]]] = {}
    for s in segments:
        spans.setdefault(index[s["label"]], []).append((s["start"], s["end"] - s["start"]))
    for i, bars in spans.items():  # one collection per class: an hour's 300 bars draw at once
        ax.broken_barh(bars, (0, 1), facecolors=[class_colour(i)], linewidth=0)
    # Fixed layout: data -> pixel transforms hold already, so text can be measured before drawing.
    renderer = FigureCanvasAgg(fig).get_renderer()
    x0, x1 = ax.get_xlim()
    px_per_s = ax.get_window_extent().width / (x1 - x0) if x1 > x0 else 0
    text_px: dict[str, float] = {}
    for s in segments:
        name = s["label"]
        if name not in text_px:
            probe = ax.text(0, 0, name, fontsize=8)
            text_px[name] = probe.get_window_extent(renderer).width
            probe.remove()
        if (s["end"] - s["start"]) * px_per_s >= text_px[name] + 2 * LABEL_PAD_PX:
            r, g, b = class_colour(index[name])[:3]
            ink = "white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.55 else "black"
            ax.text((s["start"] + s["end"]) / 2, 0.5, name, ha="center", va="center", fontsize=8, color=ink,
                    clip_on=True)


def _draw_curve(ax, times: Sequence[float], probs: Sequence[float], threshold: float, duration_s: float) -> None:
    times, probs = np.asarray(times, float), np.asarray(probs, float)
    if len(times) > CURVE_POINTS:
        # An hour of windows is several per pixel: drawn point by point it is a black smear, so
        # draw each bin's mean and, lighter, its range, and say so.
        edges = np.linspace(0, duration_s, CURVE_POINTS + 1)
        which = np.clip(np.searchsorted(edges, times, side="right") - 1, 0, CURVE_POINTS - 1)
        counts = np.bincount(which, minlength=CURVE_POINTS)
        full = counts > 0
        mean = np.bincount(which, probs, CURVE_POINTS)[full] / counts[full]
        low, high = np.full(CURVE_POINTS, np.inf), np.full(CURVE_POINTS, -np.inf)
        np.minimum.at(low, which, probs)
        np.maximum.at(high, which, probs)
        centres = ((edges[:-1] + edges[1:]) / 2)[full]
        ax.fill_between(centres, low[full], high[full], color=CURVE, alpha=0.18, linewidth=0)
        ax.plot(centres, mean, color=CURVE, linewidth=1)
        ax.text(0.004, 0.96, f"mean per {_span(duration_s / CURVE_POINTS)}; band: lowest to highest",
                transform=ax.transAxes, ha="left", va="top", fontsize=7, color="0.3", bbox=LABEL_BOX)
    else:
        ax.plot(times, probs, color=CURVE, linewidth=1.2)
        ax.fill_between(times, probs, color=CURVE, alpha=0.1, linewidth=0)
    if threshold > 0:
        ax.axhline(threshold, color=THRESHOLD, linestyle="--", linewidth=1)
        ax.annotate(f"threshold {threshold:g}", (1, threshold), xycoords=("axes fraction", "data"),
                    xytext=(-4, 3), textcoords="offset points", ha="right", va="bottom", fontsize=8,
                    color=THRESHOLD, bbox=LABEL_BOX)
    ax.set_ylim(0, 1.02)
    ax.set_yticks([0, 0.5, 1])
    ax.set_ylabel("top-class\nprobability", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)


def _time_axis(ax, duration_s: float) -> None:
    step = tick_step(duration_s)
    hours = duration_s >= 3600
    decimals = 1 if step < 1 else 0
    ax.xaxis.set_major_locator(MultipleLocator(step))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda t, _: clock(t, hours=hours, decimals=decimals)))
    ax.set_xlabel("time (h:mm:ss)" if hours else "time (m:ss)", fontsize=9)


def _choose(thumbnails: Sequence[tuple[float, np.ndarray]], axis_w: float) -> list[tuple[float, np.ndarray, float]]:
    """(time, image, width in inches) of the thumbnails drawn: at most as many as fit side by
    side over the axis, spread evenly over those given."""
    ordered = sorted(((float(t), np.asarray(image)) for t, image in thumbnails), key=lambda x: x[0])
    sized = [(t, image, min(THUMB_H * image.shape[1] / max(image.shape[0], 1), THUMB_MAX_W)) for t, image in ordered]
    if not sized:
        return []
    widest = max(w for _, _, w in sized)
    fit = min(MAX_THUMBS, len(sized), max(1, int((axis_w + THUMB_GAP) // (widest + THUMB_GAP))))
    picks = np.unique(np.round(np.linspace(0, len(sized) - 1, fit)).astype(int))
    return [sized[i] for i in picks]


def _draw_thumbs(ax, thumbs, duration_s: float) -> None:
    """Thumbnails in a row above the strip, nudged apart where their times crowd, each with
    its time above and a line down to that time on the strip. One axes in inches (x from the
    strip's left edge, y up from its top) holds them all: an axes per thumbnail would cost
    more than the rest of the picture."""
    axis_w = WIDTH - LEFT - RIGHT
    at = [axis_w * min(max(t / duration_s, 0), 1) for t, _, _ in thumbs]
    lefts = place(at, [w for _, _, w in thumbs], 0, axis_w, THUMB_GAP)
    # A frame of a short video needs its tenths: 0:00.5 and 0:00.9 are different moments.
    stamp = lambda t: clock(t, hours=duration_s >= 3600, decimals=1 if duration_s < 60 else 0)
    bottom = THUMB_LINE
    for (t, image, w), left, x in zip(thumbs, lefts, at):
        h = w * image.shape[0] / max(image.shape[1], 1)
        ax.imshow(image, extent=(left, left + w, bottom, bottom + h), cmap="gray" if image.ndim == 2 else None)
        ax.add_patch(Rectangle((left, bottom), w, h, fill=False, edgecolor="0.5", linewidth=0.6))
        ax.text(left + w / 2, bottom + h + 0.03, stamp(t), ha="center", va="bottom", fontsize=7, color="0.3")
        ax.plot([left + w / 2, x], [bottom, 0], color="0.5", linewidth=0.7)
    ax.set_xlim(0, axis_w)
    ax.set_ylim(0, THUMBS - TITLE_GAP)
    ax.set_aspect("auto")
    ax.axis("off")
