"""A search over training configs with Optuna: the request (a space of dotted paths, a
sampler, a pruner), the space as Optuna's distributions, and the training request of a
sampled point. Where the trials run and how the study is kept is the service's business
(core.search); this module knows configs and Optuna only."""
from __future__ import annotations

from typing import Any, Literal

import optuna
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator

optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per trial is the service's to log, not Optuna's

_STRICT = ConfigDict(extra="forbid")
Choice = StrictBool | StrictInt | StrictFloat | StrictStr | None  # what Optuna's categorical takes


class Range(BaseModel):
    """A numeric dimension: uniform between low and high, or log-uniform."""
    model_config = _STRICT
    low: float
    high: float
    log: bool = Field(False, description="sample log-uniformly (learning rates, loss weights)")
    type: Literal["float", "int"] = "float"

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if not self.low < self.high:
            raise ValueError("low must be below high")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        if self.type == "int" and not (self.low.is_integer() and self.high.is_integer()):
            raise ValueError("an int range needs whole low and high")
        return self

    def ends(self) -> list[float | int]:
        return [int(self.low), int(self.high)] if self.type == "int" else [self.low, self.high]


class SearchRequest(BaseModel):
    model_config = _STRICT
    method: Literal["tpe", "random"] = Field("tpe", description="tpe: Optuna's tree-structured Parzen "
                                             "estimator (after a few random trials); random: independent samples")
    trials: int = Field(8, ge=2, le=200, description="training jobs the search runs in all")
    parallel: int = Field(2, ge=1, le=32, description="trials running at once: more finish sooner, fewer let "
                          "each sample learn from more finished trials")
    space: dict[str, Range | list[Choice]] = Field(
        min_length=1, max_length=20, description="dotted path -> {low, high, log, type} or a list of choices")
    metric: Literal["val_acc"] = Field("val_acc", description="maximised: the trial's best validation accuracy")
    pruner: Literal["median", "asha"] | None = Field(
        "median", description="median: stop a trial whose best so far is below the median of the ended trials at "
        "the same epoch; asha: asynchronous successive halving (rungs at 1, 3, 9... epochs); null: none")
    startup_trials: int = Field(2, ge=0, le=100, description="trials that end before the median pruner prunes any, "
                                "and (at least 2) random trials before TPE models the space")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="the sampler's")

    @model_validator(mode="after")
    def _choices(self) -> SearchRequest:
        for path, dim in self.space.items():
            if isinstance(dim, list) and not 1 <= len(dim) <= 50:
                raise ValueError(f"space.{path}: 1 to 50 choices")
        return self

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        out: dict[str, optuna.distributions.BaseDistribution] = {}
        for path, dim in self.space.items():
            if isinstance(dim, list):
                out[path] = optuna.distributions.CategoricalDistribution(dim)
            elif dim.type == "int":
                out[path] = optuna.distributions.IntDistribution(int(dim.low), int(dim.high), log=dim.log)
            else:
                out[path] = optuna.distributions.FloatDistribution(dim.low, dim.high, log=dim.log)
        return out

    def sampler(self, asked: int) -> optuna.samplers.BaseSampler:
        """The sampler for the next trial. A study is loaded afresh for every ask, so the
        seed moves on with the trials asked (the same seed twice would give the same point)."""
        seed = self.seed + asked
        if self.method == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, self.startup_trials),
                                          constant_liar=True)  # running trials count as pessimistic guesses

    def make_pruner(self) -> optuna.pruners.BasePruner:
        if self.pruner == "median":
            return optuna.pruners.MedianPruner(n_startup_trials=self.startup_trials)
        if self.pruner == "asha":
            return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
        return optuna.pruners.NopPruner()

    def corners(self) -> list[dict[str, Any]]:
        """A point per end of each range and per choice (the others at their first): if
        each of these is a valid config, the search's points are too, bar combinations."""
        first = {path: dim[0] if isinstance(dim, list) else dim.ends()[0] for path, dim in self.space.items()}
        values = {path: dim if isinstance(dim, list) else dim.ends() for path, dim in self.space.items()}
        return [{**first, path: v} for path, vs in values.items() for v in vs]
