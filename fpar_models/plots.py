"""The pictures researchers look at, as PNG bytes: training curves, an experiment's
curves, confusion matrices, CAM grids and what the self-supervised heads predict.

Matplotlib's object API on the Agg canvas: no display, no pyplot global state, so the
gateway may draw from several threads at once. Torch-free; images come in as uint8 arrays.
"""
from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

TRAIN, VAL = "#1f77b4", "#d62728"


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def stage_bounds(rows: Sequence[dict[str, Any]]) -> list[tuple[int, int]]:
    """(x where a stage starts, stage number) for every stage after the first."""
    return [(i + 1, row["stage"]) for i, row in enumerate(rows) if i and row["stage"] != rows[i - 1]["stage"]]


def _mark_stages(ax, bounds: list[tuple[int, int]]) -> None:
    for x, stage in bounds:
        ax.axvline(x - 0.5, color="0.4", linestyle="--", linewidth=1)
        ax.annotate(f"stage {stage}", (x - 0.5, 1), xycoords=("data", "axes fraction"), xytext=(3, -12),
                    textcoords="offset points", fontsize=8, color="0.3")


def training_curves(rows: Sequence[dict[str, Any]], title: str) -> bytes:
    """Loss and accuracy per epoch, training and validation, every stage on one epoch axis
    with the stage boundaries marked; the best validation epoch is circled."""
    x = np.arange(1, len(rows) + 1)
    fig = Figure(figsize=(11, 4.2))
    loss_ax, acc_ax = fig.subplots(1, 2)
    bounds = stage_bounds(rows)
    for ax, key, label in ((loss_ax, "loss", "loss (classification + alpha x heads)"), (acc_ax, "acc", "accuracy (%)")):
        scale = 100 if key == "acc" else 1
        for prefix, colour in (("train_", TRAIN), ("val_", VAL)):
            values = np.array([r.get(prefix + key, np.nan) for r in rows], dtype=float) * scale
            ax.plot(x, values, marker="o" if len(rows) <= 30 else None, markersize=3, color=colour,
                    label=f"{prefix[:-1]}")
        _mark_stages(ax, bounds)
        ax.set_xlabel("epoch (all stages)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=9)
    val = np.array([r.get("val_acc", np.nan) for r in rows], dtype=float)
    if np.isfinite(val).any():
        best = int(np.nanargmax(val))
        acc_ax.plot(best + 1, 100 * val[best], "o", markersize=11, markerfacecolor="none", color="k")
        acc_ax.annotate(f"best {100 * val[best]:.1f}%", (best + 1, 100 * val[best]), xytext=(6, 6),
                        textcoords="offset points", fontsize=9)
    acc_ax.set_ylim(-2, 102)
    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _png(fig)


def experiment_curves(series: Sequence[dict[str, Any]], title: str, bounds: list[tuple[int, int]]) -> bytes:
    """Validation accuracy per epoch of every grid point: the mean over its trials, with a
    band from the lowest to the highest trial. series: {label, mean, low, high} (epoch-indexed)."""
    fig = Figure(figsize=(11, 5))
    ax = fig.subplots()
    colours = [f"C{i % 10}" for i in range(len(series))]
    for s, colour in zip(series, colours):
        x = np.arange(1, len(s["mean"]) + 1)
        ax.plot(x, 100 * np.asarray(s["mean"], float), color=colour, label=s["label"], linewidth=1.6)
        ax.fill_between(x, 100 * np.asarray(s["low"], float), 100 * np.asarray(s["high"], float),
                        color=colour, alpha=0.15, linewidth=0)
    _mark_stages(ax, bounds)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch (all stages)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, title="grid point (mean; band: min-max)",
              title_fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _png(fig)


def search_curves(trials: Sequence[dict[str, Any]], title: str, bounds: list[tuple[int, int]]) -> bytes:
    """A search: each trial's validation accuracy per epoch (a pruned trial's line stops
    where it was pruned, with an x), and each trial's result by trial number with the best
    so far. trials: {number, label, val_acc (per epoch), value (its best_val_acc or None),
    pruned}, in trial order."""
    fig = Figure(figsize=(13, 5))
    curves_ax, history_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    for i, t in enumerate(trials):
        colour = f"C{i % 10}"
        acc = 100 * np.asarray(t["val_acc"], float)
        x = np.arange(1, len(acc) + 1)
        curves_ax.plot(x, acc, color=colour, linewidth=1.4, linestyle=":" if t["pruned"] else "-",
                       label=f"#{t['number']} {t['label']}" + (" (pruned)" if t["pruned"] else ""))
        if t["pruned"] and len(acc):
            curves_ax.plot(x[-1], acc[-1], "x", color=colour, markersize=9, markeredgewidth=2)
    _mark_stages(curves_ax, bounds)
    curves_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    curves_ax.set(xlabel="epoch (all stages)", ylabel="validation accuracy (%)", ylim=(-4, 104),
                  title="each trial (dotted, x: pruned there)")
    curves_ax.title.set_fontsize(9)
    curves_ax.grid(alpha=0.3)
    curves_ax.legend(loc="upper left", fontsize=7, ncol=2 if len(trials) > 8 else 1)

    numbers = [t["number"] for t in trials]
    done = [(t["number"], 100 * t["value"]) for t in trials if t["value"] is not None]
    pruned = [(t["number"], 100 * max(t["val_acc"])) for t in trials if t["pruned"] and t["val_acc"]]
    if done:
        history_ax.plot(*zip(*done), "o", color="C0", label="ended: best val acc")
        best = np.maximum.accumulate([v for _, v in done])
        last = max(numbers)  # the line runs on to the last trial: nothing after its jump beat it
        history_ax.step([n for n, _ in done] + [last], [*best, best[-1]], where="post", color="k", linewidth=1.2,
                        label="best so far")
    if pruned:
        history_ax.plot(*zip(*pruned), "x", color="C3", markersize=8, markeredgewidth=2,
                        label="pruned: best before it stopped")
    history_ax.set(xlabel="trial", ylabel="validation accuracy (%)", ylim=(-4, 104), title="the search")
    history_ax.title.set_fontsize(9)
    if numbers:
        history_ax.set_xlim(min(numbers) - 0.5, max(numbers) + 0.5)
    history_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    history_ax.grid(alpha=0.3)
    history_ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _png(fig)


def confusion(classes: Sequence[str], matrix: np.ndarray, title: str) -> bytes:
    """Rows are the true classes, normalised per row; the count is written in each cell
    when the matrix is small enough to read."""
    matrix = np.asarray(matrix, dtype=float)
    n = len(classes)
    side = min(16, max(5.5, 0.22 * n + 3))
    fig = Figure(figsize=(side + 1.2, side))
    ax = fig.subplots()
    rates = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    font = 9 if n <= 12 else 7 if n <= 30 else 6  # 61 GTEA classes: 6 pt in cells of ~24 px
    ax.set_xticks(range(n), classes, rotation=90, fontsize=font)
    ax.set_yticks(range(n), classes, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if rates[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _png(fig)


def image_grid(rows: Sequence[Sequence[np.ndarray]], row_titles: Sequence[str], col_titles: Sequence[str],
               title: str, cell: float = 1.9) -> bytes:
    """Images (H, W, 3 or H, W) in a grid, titled per row and column."""
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig = Figure(figsize=(cell * n_cols + 0.8, cell * n_rows + 0.9))
    axes = np.atleast_2d(fig.subplots(n_rows, n_cols, squeeze=False))
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(row):
                image = row[j]
                ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255 if image.dtype == np.uint8
                          else 1, interpolation="nearest" if min(image.shape[:2]) < 32 else "bilinear")
            else:
                ax.axis("off")
            if i == 0 and j < len(col_titles):
                ax.set_title(col_titles[j], fontsize=9)
            if j == 0 and i < len(row_titles):
                ax.set_ylabel(row_titles[i], fontsize=9)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _png(fig)
