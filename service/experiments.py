"""Experiments in Redis. An experiment is a name, its request and the ids of its child
training jobs; its status, table and end time are derived from the children whenever it
is read, so there is no second copy of any job state to fall out of step.

    fpar:exp:{id}          hash: id, name, created_at, base, grid, points, trials, children (JSON), cancel
    fpar:idx:experiments   sorted set of experiment ids by creation time
"""
from __future__ import annotations

import json
import time
import uuid
from typing import Any

import redis

from fpar_models.experiment import status, summarize

P = "fpar:"
INDEX = f"{P}idx:experiments"


def new_experiment_id() -> str:
    return f"ex_{uuid.uuid4().hex[:16]}"


class ExperimentStore:
    def __init__(self, client: redis.Redis):
        self.r = client

    def create(self, exp_id: str, name: str, base: dict, grid: dict, points: list, trials: int,
               children: list[dict[str, Any]]) -> None:
        """children: {id, point, trial, seed} per training job, in grid order."""
        now = time.time()
        pipe = self.r.pipeline()
        pipe.hset(f"{P}exp:{exp_id}", mapping={
            "id": exp_id, "name": name, "created_at": now, "base": json.dumps(base), "grid": json.dumps(grid),
            "points": json.dumps(points), "trials": trials, "children": json.dumps(children), "cancel": 0})
        pipe.zadd(INDEX, {exp_id: now})
        pipe.execute()

    def request_cancel(self, exp_id: str) -> None:
        self.r.hset(f"{P}exp:{exp_id}", "cancel", 1)

    def get(self, exp_id: str) -> dict[str, Any] | None:
        raw = self.r.hgetall(f"{P}exp:{exp_id}")
        if not raw:
            return None
        exp = {k.decode(): v.decode() for k, v in raw.items()}
        children = json.loads(exp["children"])
        pipe = self.r.pipeline()
        for child in children:
            pipe.hmget(f"{P}job:{child['id']}", "status", "result", "finished_at")
        jobs = []
        for child, (state, result, finished) in zip(children, pipe.execute()):
            result = json.loads(result) if result else {}
            jobs.append({**child, "status": state.decode() if state else "failed",
                         "best_val_acc": result.get("best_val_acc"),
                         "finished_at": float(finished) if finished else None})
        states = [j["status"] for j in jobs]
        state = status(states, exp["cancel"] == "1")
        ended = state in ("succeeded", "failed", "cancelled") and all(
            s in ("succeeded", "failed", "cancelled") for s in states)
        finished_times = [j["finished_at"] for j in jobs if j["finished_at"]]
        return {"id": exp["id"], "name": exp["name"], "status": state, "created_at": float(exp["created_at"]),
                "finished_at": max(finished_times) if ended and finished_times else None,
                "base": json.loads(exp["base"]), "grid": json.loads(exp["grid"]),
                "points": json.loads(exp.get("points", "[]")), "trials": int(exp["trials"]),
                "jobs": [{k: j[k] for k in ("id", "point", "trial", "seed", "status", "best_val_acc")} for j in jobs],
                "table": summarize(jobs)}

    def list(self, limit: int, before: float | None = None) -> tuple[list[dict[str, Any]], float | None]:
        """Newest first. Returns the page and the score to continue before (None at the end)."""
        top = f"({before}" if before is not None else "+inf"
        found = self.r.zrevrangebyscore(INDEX, top, "-inf", start=0, num=limit + 1, withscores=True)
        page = [self.get(raw.decode()) for raw, _ in found[:limit]]
        more = found[limit - 1][1] if len(found) > limit else None
        return [e for e in page if e], more
