"""Experiments: the reports' unit of work, a grid of training configs times repeated
trials, and the table they print (mean and spread of the best validation accuracy per
grid point).

    {"name": "seed 004 table 3", "base": {"preset": "ms-regression"},
     "grid": {"stages.1.lr": [1e-4, 2e-4], "model.heads.0.alpha": [0.1, 0.5]}, "trials": 3}

A grid path indexes into the training config as a client writes it ("stages.1.part_lr.heads",
"model.heads.0.alpha", "frames"); a value may itself be a list (milestones). `points` lists
rows one by one, for the reports' tables that are not a cartesian product (each point is
then crossed with the grid). Trial k of a point runs with the point's seed + k.
Torch-free: the gateway expands and validates an experiment before anything is queued,
and the same code summarises it.
"""
from __future__ import annotations

import copy
import csv
import io
import itertools
import json
import re
import statistics
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fpar_models.config import TrainConfig
from fpar_models.formatting import format_value
from fpar_models.presets import UnknownPreset, resolve_config

_SEGMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*|\d{1,3})$")


class ExperimentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=120, description="what the table is, e.g. 'seed 004 table 3'")
    base: dict[str, Any] = Field(default_factory=dict, description="a training config: preset + overrides")
    grid: dict[str, list[Any]] = Field(
        default_factory=dict, max_length=8,
        description="dotted config path -> the values it takes; the experiment runs their cartesian product")
    points: list[dict[str, Any]] = Field(
        default_factory=list, max_length=200,
        description="rows given one by one ({path: value, ...}), each crossed with the grid")
    trials: int = Field(1, ge=1, le=20, description="identical runs per grid point (seeds base seed + k)")

    @field_validator("grid")
    @classmethod
    def _paths_and_values(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for path, values in grid.items():
            _check_path(path)
            if not 1 <= len(values) <= 100:
                raise ValueError(f"'{path}' needs 1 to 100 values, not {len(values)}")
        return grid

    @field_validator("points")
    @classmethod
    def _point_paths(cls, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for point in points:
            for path in point:
                _check_path(path)
        return points

    @property
    def columns(self) -> list[str]:
        return columns(self.points, self.grid)

    def combinations(self) -> list[dict[str, Any]]:
        crossed = [dict(zip(self.grid, values)) for values in itertools.product(*self.grid.values())]
        return [{**point, **cell} for point in self.points or [{}] for cell in crossed]


def columns(points: list[dict[str, Any]], grid: dict[str, list[Any]]) -> list[str]:
    """The table's grid columns: every path of the points, then the grid's."""
    return list(dict.fromkeys([*(path for p in points for path in p), *grid]))


def _check_path(path: str) -> None:
    if not all(_SEGMENT.match(s) for s in path.split(".")):
        raise ValueError(f"'{path}' is not a dotted path into the training config (e.g. 'stages.1.lr')")


class GridError(ValueError):
    """A grid point (or the base) that is not a valid training config; `loc` names it."""

    def __init__(self, loc: list[str | int], message: str):
        super().__init__(message)
        self.loc = loc


@dataclass(frozen=True)
class Child:
    point: dict[str, Any]  # path -> value
    trial: int
    body: dict[str, Any]   # the point's training request (base + point), as a client would write it
    config: TrainConfig    # resolved, with the trial's seed


def set_path(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of body with value at the dotted path. Missing objects are created and lists
    padded with {}: merged onto the preset, an empty object keeps the preset's entry."""
    out = copy.deepcopy(body)
    keys = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = out
    for key, below in zip(keys, keys[1:]):
        node = _container(node, key, list if isinstance(below, int) else dict, path)
    _slot(node, keys[-1], path)
    node[keys[-1]] = value
    return out


def _slot(node: Any, key: str | int, path: str) -> None:
    """Make node[key] addressable: a list index pads the list, a name needs an object."""
    if isinstance(key, int) != isinstance(node, list):
        what = "a list index" if isinstance(key, int) else "a field name"
        raise GridError(["grid", path], f"{path}: '{key}' is {what}, but the config has "
                        f"{'a list' if isinstance(node, list) else 'no object'} there")
    if isinstance(key, int):
        node.extend({} for _ in range(key + 1 - len(node)))


def _container(node: Any, key: str | int, kind: type, path: str) -> Any:
    _slot(node, key, path)
    current = node[key] if isinstance(key, int) else node.get(key)
    if not isinstance(current, kind):
        if current not in (None, {}):
            raise GridError(["grid", path], f"{path}: the config holds {json.dumps(current)} where the path "
                            f"needs {'a list' if kind is list else 'an object'}")
        node[key] = current = kind()
    return current


def _culprit(point: dict[str, Any], loc: tuple) -> str | None:
    """The grid path an error location points into. Pydantic's location may hold more
    steps than the path (a head's kind: model.heads.0.motion_segmentation.alpha), or stop
    above it (a whole stage refused)."""
    where = [str(p) for p in loc]
    for path in point:
        parts = path.split(".")
        remaining = iter(where)
        if all(part in remaining for part in parts) or parts[:len(where)] == where:
            return path
    return None


def expand(request: ExperimentRequest, max_children: int) -> list[Child]:
    """Every child config, validated; a GridError names the first path and value at fault."""
    points = request.combinations()
    if len(points) * request.trials > max_children:
        raise GridError(["grid"], f"{len(points)} grid points x {request.trials} trials = "
                        f"{len(points) * request.trials} training jobs; at most {max_children} "
                        "(FPAR_MAX_EXPERIMENT_JOBS)")
    try:
        resolve_config(request.base)
    except (ValidationError, UnknownPreset, TypeError) as e:
        raise GridError(["base"], f"base: {_first_error(e)}") from None
    children = []
    for point in points:
        body = request.base
        for path, value in point.items():
            try:
                body = set_path(body, path, value)
            except GridError as e:
                e.loc[0] = "grid" if path in request.grid else "points"
                raise
        try:
            cfg = resolve_config(body)
        except (ValidationError, UnknownPreset) as e:
            loc = e.errors()[0]["loc"] if isinstance(e, ValidationError) else ("preset",)
            path = _culprit(point, loc) or next(iter(point), "grid")
            where = ["grid", path] if path in request.grid else ["points", path]
            raise GridError(where, f"{path} = {json.dumps(point.get(path))}: {_first_error(e)}") from None
        for trial in range(request.trials):
            seeded = TrainConfig.model_validate({**cfg.model_dump(mode="json"), "seed": cfg.seed + trial})
            children.append(Child(point, trial, body, seeded))
    return children


def _first_error(e: Exception) -> str:
    if isinstance(e, ValidationError):
        err = e.errors(include_url=False)[0]
        return f"{'.'.join(map(str, err['loc']))}: {err['msg']}"
    return str(e)


# -- the table -----------------------------------------------------------------------------

def summarize(trials: list[tuple[dict[str, Any], float | None]]) -> list[dict[str, Any]]:
    """Rows in grid order, one per point: the succeeded trials' best_val_acc as trials
    (how many), mean, sample std (0 for one trial), min and max; `best` marks the highest mean.
    `trials`: (point, best_val_acc if the child succeeded, else None) per child."""
    rows: dict[str, dict[str, Any]] = {}
    for point, acc in trials:
        row = rows.setdefault(json.dumps(point, sort_keys=True), {"point": point, "accs": []})
        if acc is not None:
            row["accs"].append(acc)
    table = []
    for row in rows.values():
        accs = row.pop("accs")
        table.append({**row, "trials": len(accs), "mean": statistics.fmean(accs) if accs else None,
                      "std": statistics.stdev(accs) if len(accs) > 1 else (0.0 if accs else None),
                      "min": min(accs, default=None), "max": max(accs, default=None), "best": False})
    scored = [r for r in table if r["mean"] is not None]
    if scored:
        max(scored, key=lambda r: r["mean"])["best"] = True
    return table


def render(table: list[dict[str, Any]], paths: list[str], fmt: str) -> str:
    """The table in the reports' layout: a column per grid path, then trials, mean, std;
    percent with two decimals in markdown, fractions in csv and json."""
    if fmt == "json":
        return json.dumps([{**{p: r["point"].get(p) for p in paths}, "trials": r["trials"], "mean": r["mean"],
                            "std": r["std"]} for r in table], indent=2)
    if fmt == "md":
        pct = lambda x: "" if x is None else f"{100 * x:.2f}"  # noqa: E731
        lines = ["| " + " | ".join([*paths, "trials", "mean", "std"]) + " |",
                 "|" + "---|" * (len(paths) + 3)]
        for r in table:
            mean = f"**{pct(r['mean'])}**" if r["best"] else pct(r["mean"])
            cells = [format_value(r["point"].get(p, "")) for p in paths]
            lines.append("| " + " | ".join([*cells, str(r["trials"]), mean, pct(r["std"])]) + " |")
        return "\n".join(lines) + "\n"
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow([*paths, "trials", "mean", "std"])
    for r in table:
        out.writerow([*(format_value(r["point"].get(p, "")) for p in paths), r["trials"],
                      "" if r["mean"] is None else repr(r["mean"]), "" if r["std"] is None else repr(r["std"])])
    return buf.getvalue()
