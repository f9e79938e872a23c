"""fpar: the command line of an fpar-serve stack.

    fpar train --preset egornn-attention --dataset gtea61 --set stages.1.lr=1e-4 --watch
    fpar jobs | fpar watch ID | fpar cancel ID | fpar delete ID
    fpar predict frames/*.png [--model M] [--explain DIR]
    fpar models | fpar presets
    fpar experiment submit grid.json --watch | fpar experiment list | fpar experiment table ID
    fpar dataset ingest kitchen --source incoming/kitchen --watch | fpar dataset list | fpar dataset show NAME
    fpar timeline kitchen.mp4 --watch --csv kitchen.csv --png kitchen.png [--model M] [--window S] [--stride S]
    fpar timeline recordings/kitchen.mp4 --source [--smoothing N] [--min-segment S] [--threshold P] [--json]

Talks to FPAR_URL (default http://127.0.0.1:8000) with FPAR_API_KEY when set. An error of
the API is printed as its problem's title and detail, and the exit code is 1.
"""
from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from cli import tables
from cli.client import ApiError, JsonOpt, call, err, out, queued, show, stream
from cli.datasets import dataset_app, progress_line
from cli.timelines import timeline, windows_line
from core.store.records import TERMINAL, JobStatus
from fpar_models.experiment import set_path

app = typer.Typer(help="Train and serve First Person Action Recognition models on an fpar-serve stack "
                  "(FPAR_URL, FPAR_API_KEY). API errors print their problem's title and detail; exit code 1.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
experiment_app = typer.Typer(help="grids of training configs x trials (/experiments)", no_args_is_help=True)
app.add_typer(experiment_app, name="experiment")
app.add_typer(dataset_app, name="dataset")
app.command()(timeline)
VIDEO = {".mp4", ".avi", ".mov", ".mkv", ".webm"}


def parse_value(text: str) -> Any:
    """`--set` values are JSON where they parse (1e-4, true, [1, 2], "x"), text otherwise."""
    try:
        return json.loads(text)
    except ValueError:
        return text


@app.command()
def train(preset: Annotated[str | None, typer.Option(help="one of `fpar presets`")] = None,
          dataset: Annotated[str | None, typer.Option(help="a folder in the stack's data dir")] = None,
          set_: Annotated[list[str] | None, typer.Option("--set", help="PATH=VALUE override, e.g. stages.1.lr=1e-4; "
                                                         "repeatable")] = None,
          config: Annotated[Path | None, typer.Option(help="a JSON training config to start from")] = None,
          watch_: Annotated[bool, typer.Option("--watch", help="follow it to the end")] = False,
          as_json: JsonOpt = False) -> None:
    """Queue a training."""
    body: dict[str, Any] = json.loads(config.read_text()) if config else {}
    body.update({k: v for k, v in (("preset", preset), ("dataset", dataset)) if v is not None})
    for item in set_ or []:
        path, eq, value = item.partition("=")
        if not eq:
            raise typer.BadParameter(f"'{item}' is not PATH=VALUE", param_hint="--set")
        body = set_path(body, path, parse_value(value))
    job = call("POST", "/train", json=body).json()
    queued(job, as_json, f"queued [bold]{job['id']}[/bold]", watch if watch_ else None)


@app.command()
def jobs(kind: Annotated[str | None, typer.Option(help="train, predict, ingest or timeline")] = None,
         status: Annotated[str | None, typer.Option(help=", ".join(JobStatus))] = None,
         limit: int = 20, as_json: JsonOpt = False) -> None:
    """Jobs, newest first."""
    params = {k: v for k, v in (("kind", kind), ("status", status), ("limit", limit)) if v is not None}
    found = call("GET", "/jobs", params=params).json()["jobs"]
    show(found, as_json, tables.jobs(found, out.width))


@app.command()
def watch(job_id: str) -> None:
    """Follow a job live (server-sent events): a progress bar, then a row per epoch."""
    table_started, final = False, None
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=out, transient=True) as bar:
        task = bar.add_task(job_id, total=1.0)
        for e in stream(f"/jobs/{job_id}/events"):
            if e.kind == "status":
                final = e.data
                bar.update(task, description=f"{job_id} {e.data['status']}")
            elif e.kind == "progress":
                p = e.data
                where = (progress_line(p) if "videos" in p else  # an ingest's
                         windows_line(p) if "windows" in p else  # a timeline's
                         f"stage {p.get('stage')}/{p.get('stages')} epoch {p.get('epoch')}/{p.get('epochs')}")
                bar.update(task, completed=p.get("fraction", 0), description=f"{job_id} {where}")
            elif e.kind == "metrics":
                if not table_started:
                    bar.console.print(f"{'stage':>5} {'epoch':>5} {'train loss':>10} {'train acc':>9} "
                                      f"{'val loss':>9} {'val acc':>8} {'s':>6}")
                    table_started = True
                bar.console.print(metrics_line(e.data))
    if final is None:
        raise ApiError(f"the event stream of {job_id} ended without a status")
    summarize(final)


def metrics_line(row: dict) -> str:
    def num(key: str, width: int, digits: int = 3) -> str:
        v = row.get(key)
        return f"{v:>{width}.{digits}f}" if isinstance(v, int | float) else f"{'-':>{width}}"

    return (f"{row.get('stage', ''):>5} {row.get('epoch', ''):>5} {num('train_loss', 10)} {num('train_acc', 9)} "
            f"{num('val_loss', 9)} {num('val_acc', 8)} {num('train_time_s', 6, 1)}")


def summarize(final: dict) -> None:
    status = final["status"]
    colour = {JobStatus.succeeded: "green", JobStatus.failed: "red", JobStatus.cancelled: "yellow"}.get(status, "white")
    out.print(f"[{colour}]{status}[/{colour}]", end="")
    result = final.get("result") or {}
    if "segments" in result:  # a timeline's
        count = len(result["segments"])
        out.print(f": {count} segment{'s' if count != 1 else ''} of {result.get('video')}, model {result.get('model')}")
    elif "model" in result:
        out.print(f": model [bold]{result['model']}[/bold], best val acc {result.get('best_val_acc', 0):.3f}")
    elif "dataset" in result:  # an ingest's
        skipped = f", {result['skipped']} skipped" if result.get("skipped") else ""
        out.print(f": dataset [bold]{result['dataset']}[/bold], {result.get('videos', 0)} videos{skipped}, "
                  f"{result.get('frames', 0)} frames")
    elif final.get("error"):
        out.print(f": {final['error'].get('message', final['error'])}")
    else:
        out.print()
    if status != JobStatus.succeeded:
        raise typer.Exit(1)


@app.command()
def predict(files: Annotated[list[Path], typer.Argument(help="frames in temporal order, or one video", exists=True,
                                                        dir_okay=False)],
            model: Annotated[str | None, typer.Option(help="model id; default: the newest that fits")] = None,
            top_k: int = 5,
            explain: Annotated[Path | None, typer.Option(help="save the CAM over each frame as PNGs here")] = None,
            wait: float = 60, as_json: JsonOpt = False) -> None:
    """Predict the action in a clip."""
    part = "video" if len(files) == 1 and files[0].suffix.lower() in VIDEO else "frames"
    upload = [(part, (f.name, f.read_bytes())) for f in files]
    data = {"top_k": str(top_k), "wait": str(wait), "explain": str(explain is not None).lower()}
    if model:
        data["model"] = model
    job = call("POST", "/predict", files=upload, data=data, timeout=wait + 30).json()
    if job["status"] != JobStatus.succeeded:
        if job["status"] == JobStatus.failed:
            raise ApiError(f"prediction {job['id']} failed: {(job.get('error') or {}).get('message')}")
        raise ApiError(f"prediction {job['id']} is still {job['status']} after {wait:g} s: `fpar watch {job['id']}`")
    result = job["result"]
    if explain is not None:
        explain.mkdir(parents=True, exist_ok=True)
        for i, png in enumerate(result.get("cams", [])):
            (explain / f"cam_{i:03d}.png").write_bytes(base64.b64decode(png))
    if as_json:
        show({k: v for k, v in job.items() if k != "result"} | {"result": {**result, "cams": len(result.get(
            "cams", []))}}, True)
        return
    out.print(tables.ranking(result, out.width))
    if explain is not None:
        out.print(f"{len(result.get('cams', []))} CAM pictures in {explain}")


@app.command()
def models(as_json: JsonOpt = False) -> None:
    """Trained models, newest first."""
    found = call("GET", "/models").json()
    show(found, as_json, tables.models(found, out.width))


@app.command()
def presets(as_json: JsonOpt = False) -> None:
    """The reports' configurations."""
    found = call("GET", "/presets").json()
    show(found, as_json, tables.presets(found, out.width))


@app.command()
def cancel(job_id: str) -> None:
    """Cancel a job (queued: at once; running: at its next batch)."""
    job = call("POST", f"/jobs/{job_id}/cancel").json()
    stopping = " (stopping at the next batch)" if job["status"] == JobStatus.running else ""
    out.print(f"{job_id}: {job['status']}{stopping}")


@app.command()
def delete(ident: Annotated[str, typer.Argument(help="a job id (tr_..., pr_...) or a model id (m_...)")]) -> None:
    """Delete an ended job, or a model no job uses."""
    call("DELETE", f"/models/{ident}" if ident.startswith("m_") else f"/jobs/{ident}")
    out.print(f"deleted {ident}")


@experiment_app.command("submit")
def experiment_submit(file: Annotated[Path, typer.Argument(help="the request: {name, base, grid, points, trials}",
                                                           exists=True, dir_okay=False)],
                      watch_: Annotated[bool, typer.Option("--watch")] = False, as_json: JsonOpt = False) -> None:
    """Queue an experiment."""
    exp = call("POST", "/experiments", json=json.loads(file.read_text())).json()
    cost, shared = exp["cost"], len(exp["shared"])
    sharing = f" after {shared} shared stage{'s' * (shared != 1)}, {cost['planned_epochs']} epochs in all " \
              f"({cost['naive_epochs']} with each job alone)" if shared else ""
    what = f"a {exp['search']['method']} search of {exp['search']['trials']} trials, {exp['search']['parallel']} " \
        "at a time" if exp.get("search") else f"{len(exp['jobs'])} training jobs{sharing}"
    queued(exp, as_json, f"queued [bold]{exp['id']}[/bold]: {what}", experiment_watch if watch_ else None)


@experiment_app.command("list")
def experiment_list(limit: int = 20, as_json: JsonOpt = False) -> None:
    found = call("GET", "/experiments", params={"limit": limit}).json()["experiments"]
    show(found, as_json, tables.experiments(found, out.width))


@experiment_app.command("table")
def experiment_table(exp_id: str, format: Annotated[str, typer.Option(help="md, csv or json")] = "md") -> None:
    """The experiment's table, as in the reports."""
    table = call("GET", f"/experiments/{exp_id}/table", params={"format": format}).text
    out.print(table, markup=False, soft_wrap=True)  # rows whole, never wrapped at the terminal: a CSV is data


@experiment_app.command("watch")
def experiment_watch(exp_id: str) -> None:
    """Follow an experiment: each shared stage's and child's state and how many have ended,
    then its table."""
    final, progress = None, None
    for e in stream(f"/experiments/{exp_id}/events"):
        if e.kind == "shared" and e.data["status"] in TERMINAL | {JobStatus.running}:
            why = f": {e.data['error']['message']}" if e.data.get("error") else ""
            out.print(f"{e.data['id']} shared stage 1-{e.data['stages']} of {len(e.data['dependants'])} jobs: "
                      f"{e.data['status']}{why}", markup=False)
        elif e.kind == "job" and e.data["status"] in TERMINAL | {JobStatus.running}:
            acc = e.data.get("best_val_acc")
            out.print(f"{e.data['id']} {e.data['point']} trial {e.data['trial']}: {e.data['status']}"
                      + (f" (val acc {acc:.3f})" if acc is not None else "")
                      + (f" ({e.data['reason']})" if e.data.get("reason") else ""), markup=False)
        elif e.kind == "progress" and e.data != progress:  # sent after every change; a child starting ends none
            progress = e.data
            out.print(f"{progress['ended']}/{progress['total']} ended")
        elif e.kind == "status":
            final = e.data
    if final is None:
        raise ApiError(f"the event stream of {exp_id} ended without a status")
    out.print(call("GET", f"/experiments/{exp_id}/table", params={"format": "md"}).text, markup=False, soft_wrap=True)
    out.print(final["status"])
    if final["status"] != JobStatus.succeeded:
        raise typer.Exit(1)


def main() -> None:
    try:
        app()
    except ApiError as e:
        err.print(f"[red]error:[/red] {e}")
        sys.exit(1)


if __name__ == "__main__":
    main()
