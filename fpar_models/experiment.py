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
import hashlib
import io
import itertools
import json
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fpar_models.config import InitFrom, TrainConfig, _conflict
from fpar_models.formatting import format_value
from fpar_models.presets import UnknownPreset, resolve_config
from fpar_models.search import SearchRequest

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
    share: bool = Field(True, description="train the stages children agree on once (a shared stage they all "
                        "start from) instead of once per child")
    search: SearchRequest | None = Field(None, description="sample the points instead (Optuna): the grid and "
                                         "points, if any, are its first trials")

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

    @model_validator(mode="after")
    def _search(self) -> ExperimentRequest:
        if self.search is None:
            return self
        if self.trials != 1:
            raise _conflict("ExperimentRequest", ("trials",), "a search runs each point once: search.trials "
                            "counts its trials", self.trials)
        for path in self.search.space:
            _check_path(path)
        for path in columns(self.points, self.grid):
            if path not in self.search.space:
                raise _conflict("ExperimentRequest", ("search", "space"), f"'{path}' is in the grid or points "
                                "(the search's first trials) but not in its space", path)
        if len(self.combinations()) > self.search.trials:
            raise _conflict("ExperimentRequest", ("search", "trials"), "fewer than the grid's and points' "
                            "first trials", self.search.trials)
        return self

    @property
    def columns(self) -> list[str]:
        return columns(self.points, self.grid, self.search)

    def locate(self, path: str) -> list[str]:
        """Where in the request a point's path comes from."""
        return ["grid" if path in self.grid else "points", path]

    def combinations(self) -> list[dict[str, Any]]:
        crossed = [dict(zip(self.grid, values)) for values in itertools.product(*self.grid.values())]
        return [{**point, **cell} for point in self.points or [{}] for cell in crossed]


def columns(points: list[dict[str, Any]], grid: dict[str, list[Any]], search: SearchRequest | None = None
            ) -> list[str]:
    """The table's grid columns: every path of the points, then the grid's, then the search space's."""
    return list(dict.fromkeys([*(path for p in points for path in p), *grid, *(search.space if search else ())]))


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
    """Every child config, validated; a GridError names the first path and value at fault.
    (A search's children are sampled as it runs: check_search validates its space.)"""
    points = request.combinations()
    if len(points) * request.trials > max_children:
        raise GridError(["grid"], f"{len(points)} grid points x {request.trials} trials = "
                        f"{len(points) * request.trials} training jobs; at most {max_children} "
                        "(FPAR_MAX_EXPERIMENT_JOBS)")
    check_base(request)
    children = []
    for point in points:
        body, cfg = point_config(request.base, point, request.locate)
        for trial in range(request.trials):
            seeded = TrainConfig.model_validate({**cfg.model_dump(mode="json"), "seed": cfg.seed + trial})
            children.append(Child(point, trial, body, seeded))
    return children


def check_base(request: ExperimentRequest) -> TrainConfig:
    try:
        return resolve_config(request.base)
    except (ValidationError, UnknownPreset, TypeError) as e:
        raise GridError(["base"], f"base: {_first_error(e)}") from None


def check_search(request: ExperimentRequest, max_children: int) -> list[dict[str, Any]]:
    """A search's space, refused before anything runs where a range's end or a choice
    makes an invalid config (a GridError at search.space.<path>). Returns its first trials:
    the grid's and points' points, each checked likewise."""
    search = request.search
    if search.trials > max_children:
        raise GridError(["search", "trials"], f"{search.trials} training jobs; at most {max_children} "
                        "(FPAR_MAX_EXPERIMENT_JOBS)")
    check_base(request)
    for corner in search.corners():
        point_config(request.base, corner, lambda path: ["search", "space", path])
    first = [point for point in request.combinations() if point]
    for point in first:
        point_config(request.base, point, request.locate)
    return first


def point_config(base: dict[str, Any], point: dict[str, Any], loc: Callable[[str], list[str | int]]
                 ) -> tuple[dict[str, Any], TrainConfig]:
    """The training request of a point (base + its values) and its config. A GridError
    names the point's path at fault, where `loc(path)` says."""
    body = base
    for path, value in point.items():
        try:
            body = set_path(body, path, value)
        except GridError as e:
            e.loc[:] = loc(path)
            raise
    try:
        return body, resolve_config(body)
    except (ValidationError, UnknownPreset) as e:
        error_at = e.errors()[0]["loc"] if isinstance(e, ValidationError) else ("preset",)
        path = _culprit(point, error_at) or next(iter(point), "grid")
        raise GridError(loc(path), f"{path} = {json.dumps(point.get(path))}: {_first_error(e)}") from None


def _first_error(e: Exception) -> str:
    if isinstance(e, ValidationError):
        err = e.errors(include_url=False)[0]
        return f"{'.'.join(map(str, err['loc']))}: {err['msg']}"
    return str(e)


# -- shared stages ---------------------------------------------------------------------------

def stage_key(cfg: TrainConfig, stages: int) -> str:
    """What training the first `stages` stages reads, hashed: configs with one key train
    those stages to the same weights, so one run of them can serve all. Left out are only
    fields those epochs never read: the later stages, the preset's name (a label), the
    final test's flow stacks, where to stop, and the heads' loss weights while no stage up
    to there trains the heads (their kinds and shapes stay in: building them draws the
    random numbers every other part's initial weights follow)."""
    data = cfg.model_dump(mode="json", exclude={"preset", "until_stage"})
    data["stages"] = data["stages"][:stages]
    data["model"].pop("eval_stacks")
    if not any("heads" in s.train for s in cfg.stages[:stages]):
        for head in data["model"]["heads"]:
            head.pop("alpha")
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(eq=False)
class Share:
    """A run of the stages up to `stages` that several configs (their indexes: `members`)
    agree on; it starts itself after `after` when that one covers fewer stages of them."""
    stages: int
    members: list[int]
    after: Share | None = None
    dependants: list[Share | int] = field(default_factory=list)  # shares and configs starting from it


def plan_shares(configs: list[TrainConfig]) -> tuple[list[Share], list[Share | None]]:
    """The shared stages of a set of training configs: for every depth k, the configs that
    agree on their first k stages (stage_key) and train past them share one run of them;
    a share every member of which also shares the next stage is merged into that one.
    Returns the shares, each after the one it starts from, and per config the share it
    starts from (None: it trains every stage itself)."""
    start: list[Share | None] = [None] * len(configs)
    shares: list[Share] = []
    for k in range(1, max(len(c.stages) for c in configs)):
        groups: dict[str, list[int]] = {}
        for i, cfg in enumerate(configs):
            if cfg.trained_stages.start < k < cfg.trained_stages.stop:
                groups.setdefault(stage_key(cfg, k), []).append(i)
        for members in (m for m in groups.values() if len(m) > 1):
            share = Share(k, members, after=start[members[0]])
            if share.after is not None and share.after.members == members:  # nobody else starts from it
                shares.remove(share.after)
                share.after = share.after.after
            shares.append(share)
            for i in members:
                start[i] = share
    for share in shares:
        if share.after is not None:
            share.after.dependants.append(share)
    for i, share in enumerate(start):
        if share is not None:
            share.dependants.append(i)
    return shares, start


@dataclass
class Plan:
    """An experiment's trainings: the shared stages' configs (`shared`, per share) and the
    children's (`children`, each started after its share: `starts`)."""
    shares: list[Share]
    shared: list[TrainConfig]
    starts: list[Share | None]
    children: list[TrainConfig]

    @property
    def epochs(self) -> int:
        return sum(map(epochs_of, (*self.shared, *self.children)))


def plan(configs: list[TrainConfig], model_of: Callable[[Share], str], share: bool = True) -> Plan:
    """The trainings of an experiment's child configs, with the stages they agree on
    shared (`model_of(share)`: the id of the model that share's job will register)."""
    shares, starts = plan_shares(configs) if share else ([], [None] * len(configs))
    shared = [_starting_after(configs[s.members[0]].model_copy(update={"until_stage": s.stages}), s.after, model_of)
              for s in shares]  # a share trains its first member's config, up to its stages
    return Plan(shares, shared, starts, [_starting_after(c, s, model_of) for c, s in zip(configs, starts)])


def _starting_after(cfg: TrainConfig, share: Share | None, model_of: Callable[[Share], str]) -> TrainConfig:
    """cfg, started from the model of `share` (after its stages) when there is one."""
    data = cfg.model_dump(mode="json")
    if share is not None:
        data["init_from"] = InitFrom(model=model_of(share), stage=share.stages).model_dump()
    return TrainConfig.model_validate(data)


def epochs_of(cfg: TrainConfig) -> int:
    """The epochs a config trains itself, at most (early stopping may train fewer)."""
    return sum(cfg.stages[i].epochs for i in cfg.trained_stages)


def cost_table(requests: list[ExperimentRequest]) -> str:
    """Markdown: per experiment, its trainings and epochs with and without shared stages
    (a search's are sampled as it runs: not in the table)."""
    lines = ["| experiment | children | shared stages | epochs, each child alone | epochs, shared | saved |",
             "|---|---|---|---|---|---|"]
    for request in (r for r in requests if r.search is None):
        configs = [child.config for child in expand(request, 200)]
        shared, naive = plan(configs, lambda share: "m_shared"), sum(map(epochs_of, configs))
        lines.append(f"| {request.name} | {len(configs)} | {len(shared.shares)} | {naive} | {shared.epochs} | "
                     f"{1 - shared.epochs / naive:.0%} |")
    return "\n".join(lines)


def requests_in(markdown: str) -> list[ExperimentRequest]:
    """The experiment bodies of a document (its ```json blocks), as docs/experiments.md has them."""
    return [ExperimentRequest.model_validate(json.loads(body)) for body in re.findall(r"```json\n(.*?)\n```",
                                                                                       markdown, re.S)]


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


if __name__ == "__main__":  # the cost table of docs/experiments.md, from its bodies
    import sys
    from pathlib import Path

    print(cost_table(requests_in(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/experiments.md").read_text())))
