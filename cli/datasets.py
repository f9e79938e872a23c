"""`fpar dataset`: what the stack can train on (/datasets), and new datasets ingested from
raw recordings, a folder on the server or an archive uploaded from here.

    fpar dataset ingest kitchen --source incoming/kitchen --labels labels.csv --flow tvl1 --watch
    fpar dataset ingest kitchen --archive kitchen.zip --format epic --label-from verb
    fpar dataset list | fpar dataset show kitchen | fpar dataset delete kitchen
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from cli import tables
from cli.client import JsonOpt, call, out, queued, show, stream
from core.store.records import JobStatus
from fpar_models.ingest.options import IngestRequest

dataset_app = typer.Typer(help="datasets in the stack's data directory, and new ones ingested from recordings "
                          "(/datasets)", no_args_is_help=True)
SUBMIT_TIMEOUT = httpx.Timeout(60, read=600, write=None)  # the gateway probes every video before it answers
SHOWN_PER_KIND = 3
SEVERITIES = {"error": "red", "warning": "yellow", "info": "blue"}
PLURAL = {"error": "errors", "warning": "warnings", "info": "info"}


# the values the API's request model allows, from the model itself
Format = IngestRequest.model_fields["format"].annotation
LabelFrom = IngestRequest.model_fields["label_from"].annotation
Flow = IngestRequest.model_fields["flow"].annotation
OnError = IngestRequest.model_fields["on_error"].annotation


@dataset_app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """Every dataset: ready (with its counts and the errors a training would meet), ingesting, failed."""
    found = call("GET", "/datasets").json()["datasets"]
    show(found, as_json, tables.datasets(found, out.width))


@dataset_app.command("show")
def show_(name: str, as_json: JsonOpt = False) -> None:
    """One dataset: videos per class and user, the validation report by severity, how it was made."""
    detail = call("GET", f"/datasets/{name}").json()
    if as_json:
        show(detail, True)
    else:
        describe(detail)


@dataset_app.command("delete")
def delete(name: str) -> None:
    """Delete a dataset (or a failed ingest's name); refused while a queued or running job uses it."""
    call("DELETE", f"/datasets/{name}")
    out.print(f"deleted dataset {name}")


@dataset_app.command("ingest")
def ingest(
        name: Annotated[str, typer.Argument(help="the new dataset's folder (letters, digits, _ and -)")],
        source: Annotated[str | None, typer.Option(help="a folder of recordings under the stack's data directory, "
                                                   "e.g. incoming/kitchen")] = None,
        archive: Annotated[Path | None, typer.Option(help="a zip or tar of recordings (and labels) to upload, "
                                                     "streamed from disk", exists=True, dir_okay=False)] = None,
        labels: Annotated[str | None, typer.Option(help="the annotation file, relative to the source or archive; "
                                                   "default: the one CSV at its top, else a class/video tree")] = None,
        format_: Annotated[Format | None, typer.Option("--format",
                                                    help="the labels' format (default auto: from the header)")] = None,
        label_from: Annotated[LabelFrom | None, typer.Option(
                                                       help="EPIC-Kitchens and EGTEA: the label is the verb, the noun "
                                                            "or both (action)")] = None,
        fps: Annotated[float | None, typer.Option(help="frames per second (default: the video's own rate)")] = None,
        shorter_side: Annotated[int | None, typer.Option(help="scale frames so their shorter side is this (default "
                                                         "256; 0: as recorded)")] = None,
        flow: Annotated[Flow | None, typer.Option(help="optical flow: dis (default, fast), "
                                                 "tvl1 (the reference's), farneback")] = None,
        bound: Annotated[float | None, typer.Option(help="flow quantised over +-bound px (default 20)")] = None,
        no_warp: Annotated[bool, typer.Option("--no-warp", help="keep the camera's motion in the flow")] = False,
        no_maps: Annotated[bool, typer.Option("--no-maps", help="write no motion maps")] = False,
        on_error: Annotated[OnError | None, typer.Option(
                                                     help="a video that fails to decode fails the ingest (fail, "
                                                          "default) or is reported and left out (skip)")] = None,
        user: Annotated[str | None, typer.Option(help="the user of recordings whose labels name none")] = None,
        user_column: Annotated[str | None, typer.Option(help="the labels' column naming the user")] = None,
        watch_: Annotated[bool, typer.Option("--watch", help="follow it to the end, then show the dataset")] = False,
        as_json: JsonOpt = False) -> None:
    """Ingest recordings into a new dataset (frames, warp flow, motion maps) as a job."""
    if (source is None) == (archive is None):
        raise typer.BadParameter("give one of --source (a folder on the server) or --archive (a file to upload)",
                                 param_hint="--source / --archive")
    given = {"name": name, "source": source, "labels": labels, "format": format_, "label_from": label_from,
             "fps": fps, "flow": flow, "bound": bound, "on_error": on_error, "user": user,
             "user_column": user_column, "warp": False if no_warp else None, "maps": False if no_maps else None}
    body: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if shorter_side is not None:
        body["shorter_side"] = shorter_side or None
    if archive is None:
        job = call("POST", "/datasets", json=body, timeout=SUBMIT_TIMEOUT).json()
    else:
        form = {k: form_value(v) for k, v in body.items()}
        with archive.open("rb") as f:  # httpx reads it in chunks as it sends
            job = call("POST", "/datasets", data=form, files={"archive": (archive.name, f)},
                       timeout=SUBMIT_TIMEOUT).json()
    items = (job.get("request") or {}).get("items", [])
    seconds = sum(i["end"] - i["start"] for i in items)
    queued(job, as_json, f"queued [bold]{job['id']}[/bold]: {len(items)} videos, {seconds:.1f} s of video "
                         f"into dataset [bold]{name}[/bold]",
           (lambda job_id: follow(job_id, name, len(items), seconds)) if watch_ else None)


def form_value(value: Any) -> str:
    """A field of the multipart form: JSON's spelling for booleans, `""` for null."""
    if isinstance(value, bool):
        return str(value).lower()
    return "" if value is None else str(value)


def progress_line(p: dict) -> str:
    """An ingest's progress (IngestProgress) in words."""
    return f"{p['videos_done']}/{p['videos']} videos, {p['seconds_done']:.1f}/{p['seconds']:.1f} s"


def follow(job_id: str, name: str, videos: int, seconds: float) -> None:
    """The ingest live: a bar by seconds of video done with the videos done beside it (on a
    terminal; piped, a line per progress event instead), then the dataset it made."""
    final, shown = None, {"videos_done": 0, "videos": videos, "seconds_done": 0.0, "seconds": seconds}
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TextColumn("{task.fields[done]}"), TimeElapsedColumn(), console=out, transient=True) as bar:
        task = bar.add_task(f"{job_id} queued", total=seconds or 1, done=progress_line(shown))

        def progress(p: dict) -> None:
            bar.update(task, completed=p["seconds_done"], total=p["seconds"] or 1, done=progress_line(p))
            if not out.is_terminal and p != shown:
                out.print(f"{job_id} {progress_line(p)}")

        for e in stream(f"/jobs/{job_id}/events"):
            if e.kind == "status":
                final = e.data
                bar.update(task, description=f"{job_id} {e.data['status']}")
            elif e.kind == "progress" and "videos" in e.data:
                progress(e.data)
                shown = e.data
        if final is not None and final["status"] != "gone":  # the stream sends progress at most twice a second
            progress(call("GET", f"/jobs/{job_id}").json().get("progress") or shown)  # and ends at the status
    if final is None:
        raise typer.Exit(1)
    status = final["status"]
    if status != JobStatus.succeeded:
        message = (final.get("error") or {}).get("message", "")
        out.print(Text(f"{status}" + (f": {message}" if message else ""), style="red"))
        raise typer.Exit(1)
    out.print(f"[green]succeeded[/green]: dataset [bold]{name}[/bold]")
    describe(call("GET", f"/datasets/{name}").json())


def describe(d: dict) -> None:
    """`fpar dataset show`: the summary, the counts, the report grouped by severity (errors
    first), and how it was made."""
    head = Table.grid(padding=(0, 2))
    head.add_column(style="dim")
    head.add_column()
    head.add_row("dataset", Text(d["name"], style="bold"))
    head.add_row("status", Text(tables.status_text(d)))
    head.add_row("origin", d["origin"] + (f" by job {d['job']}" if d.get("job") else ""))
    if d["status"] == "ready":
        head.add_row("users", Text(", ".join(d["users"])))
        head.add_row("classes", Text(f"{len(d['classes'])}: {', '.join(d['classes'])}"))
        head.add_row("videos", f"{d['videos']} ({d['frames']} frames)")
        head.add_row("flow, maps", f"{tables.yes_no(d['flow'])}, {tables.yes_no(d['maps'])}")
        head.add_row("errors", str(d["errors"]))
    out.print(head)
    if d["status"] != "ready":
        return
    if d.get("classes"):
        out.print(tables.counts(d, out.width))
    report(d["name"], d.get("report") or [])
    made = manifest_lines(d.get("manifest"))
    if made:
        out.print("[bold]made from[/bold]")
        for line in made:
            out.print(Text(f"  {line}"))


def report(name: str, findings: list[dict]) -> None:
    """The findings by severity, errors first, then by kind: a few of each kind in full (an
    ingest misses every video's first map, which says nothing new after the third)."""
    if not findings:
        out.print("[green]report: nothing a training would trip on[/green]")
        return
    for severity, colour in SEVERITIES.items():
        found = [f for f in findings if f["severity"] == severity]
        if not found:
            continue
        out.print(f"[bold {colour}]{PLURAL[severity]} ({len(found)})[/bold {colour}]")
        for kind in dict.fromkeys(f["kind"] for f in found):
            same = [f for f in found if f["kind"] == kind]
            out.print(Text(f"  {kind} ({len(same)})"))
            for f in same[:SHOWN_PER_KIND]:
                where = "" if f["path"] in f["message"] else f"{f['path']}: "  # the loader's messages name it
                out.print(Text(f"    {where}{f['message']}"))
            if len(same) > SHOWN_PER_KIND:
                out.print(Text(f"    ... and {len(same) - SHOWN_PER_KIND} more like these: "
                               f"fpar dataset show {name} --json"))


def manifest_lines(m: dict | None) -> list[str]:
    """The manifest's summary: where the recordings came from, the options, the tools."""
    if not m:
        return []
    o = m.get("options") or {}
    size = f"shorter side {o['shorter_side']} px" if o.get("shorter_side") else "size as recorded"
    rate = f"{o['fps']:g} fps" if o.get("fps") else "the videos' own frame rate"
    streams = (f"flow {o.get('flow')} (bound {o.get('bound', 0):g}, {'warp' if o.get('warp') else 'no warp'}), "
               f"{'motion maps' if o.get('maps') else 'no motion maps'}")
    skipped = m.get("skipped") or []
    lines = [f"source: {'an uploaded archive' if m.get('uploaded') else m.get('source')}, labels "
             f"{m.get('labels') or '(folder tree)'} ({m.get('format')})",
             f"{m.get('videos', 0)} videos, {rate}, {size}", streams,
             "tools: " + ", ".join(f"{k} {v}" for k, v in (m.get("tools") or {}).items())]
    lines += [f"skipped {s.get('file')} {s.get('start', 0):g}-{s.get('end', 0):g} s: {s.get('error')}"
              for s in skipped]
    return lines
