"""`fpar timeline`: a trained model slid over a long video (POST /timelines), its segments
of actions printed as a table, saved as the annotation CSV POST /datasets ingests, or as
the picture.

    fpar timeline kitchen.mp4 --watch --csv kitchen.csv --png kitchen.png
    fpar timeline recordings/kitchen.mp4 --source --model m_... --window 2 --stride 0.5 --json
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from cli import tables
from cli.client import ApiError, JsonOpt, call, out, queued, show, stream
from cli.datasets import SUBMIT_TIMEOUT, form_value
from core.store.records import JobStatus


def timeline(
        video: Annotated[str, typer.Argument(help="a video file to upload, or with --source a video under the "
                                             "stack's data directory, e.g. recordings/kitchen.mp4")],
        source: Annotated[bool, typer.Option("--source", help="VIDEO is a file of the stack's data directory: "
                                             "nothing is uploaded, and the dashboard can play it")] = False,
        model: Annotated[str | None, typer.Option(help="model id; default: the newest")] = None,
        window: Annotated[float | None, typer.Option(help="seconds per window; default: the typical length of "
                                                     "the model's training clips")] = None,
        stride: Annotated[float | None, typer.Option(help="seconds between window starts; default: half the "
                                                     "window")] = None,
        top_k: Annotated[int | None, typer.Option(help="classes listed per window (default 5)")] = None,
        smoothing: Annotated[int | None, typer.Option(help="strides averaged before each point takes its most "
                                                      "probable class (default 1: none)")] = None,
        min_segment: Annotated[float | None, typer.Option(help="seconds: shorter segments are merged into a "
                                                          "neighbour (default 0)")] = None,
        threshold: Annotated[float | None, typer.Option(help="below this top-class probability a stretch is left "
                                                        "unlabelled (default 0)")] = None,
        watch_: Annotated[bool, typer.Option("--watch", help="follow it live, then print the segments")] = False,
        csv: Annotated[Path | None, typer.Option(help="once it succeeded, save the segments here as the annotation "
                                                 "CSV (video,label,start,end,user); waits for the end")] = None,
        user: Annotated[str | None, typer.Option(help="the CSV's user column (default u1)")] = None,
        png: Annotated[Path | None, typer.Option(help="once it succeeded, save the picture here; waits for the "
                                                 "end")] = None,
        as_json: JsonOpt = False) -> None:
    """Annotate a long video: windows classified by a model, turned into segments of actions (a job)."""
    given = {"model": model, "window": window, "stride": stride, "top_k": top_k, "smoothing": smoothing,
             "min_segment": min_segment, "threshold": threshold}
    fields: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if source:
        job = call("POST", "/timelines", json={"source": video, **fields}, timeout=SUBMIT_TIMEOUT).json()
    else:
        path = Path(video)
        if not path.is_file():
            raise typer.BadParameter(f"'{video}' is not a file here (a video on the server: add --source)",
                                     param_hint="VIDEO")
        with path.open("rb") as f:  # httpx reads it in chunks as it sends
            job = call("POST", "/timelines", data={k: form_value(v) for k, v in fields.items()},
                       files={"video": (path.name, f)}, timeout=SUBMIT_TIMEOUT).json()
    wait = watch_ or csv is not None or png is not None
    if not (as_json and wait):  # --json with a wait: the finished job's JSON alone, at the end
        queued(job, as_json, queued_line(job))
    if not wait:
        return
    final = follow(job, live=watch_ and not as_json)
    if final["status"] != JobStatus.succeeded:
        message = (final.get("error") or {}).get("message", "")
        out.print(Text(final["status"] + (f": {message}" if message else ""), style="red"))
        raise typer.Exit(1)
    saved = []
    if csv is not None:
        params = {"format": "csv", **({"user": user} if user else {})}
        csv.write_text(call("GET", f"/jobs/{job['id']}/timeline", params=params).text)
        saved.append(f"segments saved to {csv}")
    if png is not None:
        png.write_bytes(call("GET", f"/jobs/{job['id']}/timeline.png").content)
        saved.append(f"picture saved to {png}")
    done = call("GET", f"/jobs/{job['id']}").json()
    if as_json:  # the finished job alone: JSON to parse, not mixed with lines
        show(done, True)
        return
    if watch_:
        r = done["result"]
        count = len(r["segments"])
        out.print(f"[green]succeeded[/green]: {count} segment{'s' if count != 1 else ''} over "
                  f"{tables.clock(r['duration_s'], r['duration_s'] >= 3600)} of [bold]{r['video']}[/bold], "
                  f"model {r['model']}")
        out.print(tables.segments(r, out.width))
    for line in saved:
        out.print(line)


def queued_line(job: dict) -> str:
    """What was queued, as the gateway resolved it: the windows, the model, the window and stride."""
    plan = job.get("request") or {}
    o = plan.get("options") or {}
    seconds = plan.get("duration_s", 0)
    return (f"queued [bold]{job['id']}[/bold]: {plan.get('windows', '?')} windows over "
            f"{tables.clock(seconds, seconds >= 3600)} of {plan.get('name', 'the video')}, model "
            f"{o.get('model')}, window {o.get('window', 0):g} s, stride {o.get('stride', 0):g} s")


def windows_line(p: dict) -> str:
    """A timeline's progress (TimelineProgress) in words."""
    return f"{p['windows_done']}/{p['windows']} windows, {p['seconds_done']:.1f}/{p['seconds']:.1f} s"


def follow(job: dict, live: bool) -> dict:
    """The job to its end: with `live`, a bar of windows done with the seconds of video
    they cover beside it (on a terminal; piped, a line per progress change). The stream
    resumes by itself when its connection breaks (cli.client.stream). Returns the final
    status event."""
    plan = job.get("request") or {}
    shown = {"windows_done": 0, "windows": plan.get("windows", 0), "seconds_done": 0.0,
             "seconds": plan.get("duration_s", 0.0)}
    final = None
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TextColumn("{task.fields[done]}"), TimeElapsedColumn(), console=out, transient=True,
                  disable=not live) as bar:
        task = bar.add_task(f"{job['id']} {job['status']}", total=shown["windows"] or 1, done=windows_line(shown))

        def progress(p: dict) -> None:
            nonlocal shown
            bar.update(task, completed=p["windows_done"], total=p["windows"] or 1, done=windows_line(p))
            if live and not out.is_terminal and p != shown:
                out.print(f"{job['id']} {windows_line(p)}")
            shown = p

        for e in stream(f"/jobs/{job['id']}/events"):
            if e.kind == "status":
                final = e.data
                bar.update(task, description=f"{job['id']} {e.data['status']}")
                if e.data.get("progress"):  # the last word: progress events come at most twice a second
                    progress(e.data["progress"])
            elif e.kind == "progress" and "windows" in e.data:
                progress(e.data)
    if final is None:
        raise ApiError(f"the event stream of {job['id']} ended without a status")
    return final
