"""The CLI's tables, laid out for the terminal's width without ever cutting an id.

A user copies ids (tr_..., pr_..., m_..., ex_...) and preset names from a listing into the
next command, so those are never narrowed, wrapped or dropped, wherever they stand. When a
table is wider than the terminal, free text wraps first (each such column down to its
`wrap` width, never below an id it holds), then whole columns go, in the order the table
names, least useful first, as `gh` and `kubectl` do. Only the first column stays always:
a terminal narrower than an id and its borders (23 cells) is beyond help.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

from core.store.records import ID, JobStatus


@dataclass(frozen=True)
class Col:
    header: str
    wrap: int = 0  # 0: shown whole on one line; n: free text, folded onto more lines down to n wide


def fit(columns: Sequence[Col], rows: Iterable[Sequence[str]], width: int, drop: Sequence[str] = (),
        title: str | None = None) -> Table:
    """A table of `rows` no wider than `width`: wrapping columns narrowed, then the columns
    named in `drop` left out in that order, as far as needed."""
    rows = [list(row) for row in rows]
    index = {c.header: i for i, c in enumerate(columns)}
    natural = [max([cell_len(c.header), *(cell_len(row[i]) for row in rows)]) for i, c in enumerate(columns)]
    ids = [max([0, *(len(m) for row in rows for m in ID.findall(row[i]))]) for i in range(len(columns))]
    narrowest = [min(n, max(c.wrap, longest_id)) if c.wrap else n
                 for c, n, longest_id in zip(columns, natural, ids, strict=True)]

    def wide(cols: list[int], widths: Sequence[int]) -> int:
        """The table's width in cells: rich's default box, a space either side of each cell."""
        return sum(widths[i] for i in cols) + 3 * len(cols) + 1

    # Every free-text column wraps down to its narrowest before any column is left out, in
    # `drop`'s order; then those kept wrap only as far as needed, the widest first (as rich does).
    shown = list(range(len(columns)))
    for header in drop:
        if wide(shown, narrowest) <= width:
            break
        shown.remove(index[header])
    widths = list(natural)
    while wide(shown, widths) > width:
        widest = max((i for i in shown if widths[i] > narrowest[i]), key=lambda i: widths[i], default=None)
        if widest is None:
            break
        widths[widest] -= 1

    table = Table(title=title)
    for i in shown:
        c = columns[i]
        table.add_column(c.header, width=widths[i], no_wrap=not c.wrap, overflow="fold")
    for row in rows:
        table.add_row(*(Text(row[i]) for i in shown))  # Text: an error's "[...]" is not rich markup
    return table


def jobs(found: list[dict], width: int) -> Table:
    """`fpar jobs`: created goes first (the list is in that order already), then the kind
    (the id's prefix tells it)."""
    rows = []
    for j in found:
        fraction = (j.get("progress") or {}).get("fraction")
        result = j.get("result") or {}
        summary = (f"{result['model']}  val {result.get('best_val_acc', 0):.3f}" if "model" in result and
                   "best_val_acc" in result else
                   f"dataset {result['dataset']}, {result.get('videos', 0)} videos" if "dataset" in result else
                   f"{len(result['segments'])} segment(s) of {result.get('video', '')}" if "segments" in result else
                   (result.get("top_k") or [{}])[0].get("label", ""))
        rows.append([j["id"], j["kind"], j["status"], f"{fraction:.0%}" if fraction is not None else "",
                     j["created_at"][:19],
                     summary if j["status"] != JobStatus.failed else (j.get("error") or {}).get("message", "")[:60]])
    columns = [Col("id"), Col("kind"), Col("status"), Col("progress"), Col("created"), Col("result", wrap=20)]
    return fit(columns, rows, width, drop=("created", "kind", "progress", "result", "status"))


def models(found: list[dict], width: int) -> Table:
    """`fpar models`: which model it is (preset) and how good (val acc) stay longest; how it
    is served, and the input size, go first."""
    rows = []
    for m in found:
        served = ", ".join(sorted({s["backend"] for s in m.get("inference", [])})) or "-"
        rows.append([m["id"], m.get("preset") or m["arch"], str(len(m["classes"])), str(m["frames"]),
                     str(m["image_size"]), f"{m['best_val_acc']:.3f}",
                     f"{m['test_acc']:.3f}" if m.get("test_acc") is not None else "-",
                     m.get("inference_precision", "fp32"), served])
    columns = [Col("id"), Col("preset"), Col("classes"), Col("frames"), Col("size"), Col("val acc"),
               Col("test acc"), Col("precision"), Col("served by", wrap=9)]
    return fit(columns, rows, width, drop=("size", "served by", "precision", "classes", "frames", "test acc",
                                           "preset", "val acc"))


def experiments(found: list[dict], width: int) -> Table:
    """`fpar experiment list`: jobs is the experiment's `progress` (ended/total), as the API counts it."""
    rows = [[e["id"], e["name"], e["status"], f"{e['progress']['ended']}/{e['progress']['total']}",
             e["created_at"][:19]] for e in found]
    columns = [Col("id"), Col("name", wrap=16), Col("status"), Col("jobs"), Col("created")]
    return fit(columns, rows, width, drop=("created", "jobs", "name", "status"))


def presets(found: list[dict], width: int) -> Table:
    """`fpar presets`: the name is what `--preset` takes; the source wraps."""
    return fit([Col("name"), Col("source", wrap=20)], ([p["name"], p["source"]] for p in found), width,
               drop=("source",))


def ranking(result: dict, width: int) -> Table:
    """`fpar predict`: the top k, under the model's id."""
    rows = ([str(i), row["label"], f"{row['probability']:.3f}"] for i, row in enumerate(result["top_k"], 1))
    return fit([Col("rank"), Col("action"), Col("probability")], rows, width, title=f"model {result['model']}")


def clock(seconds: float, hours: bool = False) -> str:
    """A time in the video: 75.25 -> '1:15.3'; with hours (a video of an hour or more)
    3725 -> '1:02:05'."""
    if hours:
        h, rest = divmod(round(max(seconds, 0)), 3600)
        return f"{h}:{rest // 60:02d}:{rest % 60:02d}"
    tenths = round(max(seconds, 0) * 10)
    return f"{tenths // 600}:{tenths % 600 / 10:04.1f}"


def segments(result: dict, width: int) -> Table:
    """`fpar timeline`: the segments in order, start and end as times in the video (m:ss.s,
    or h:mm:ss for a video of an hour or more)."""
    hours = result.get("duration_s", 0) >= 3600
    rows = ([clock(s["start"], hours), clock(s["end"], hours), s["label"], f"{s['probability']:.3f}"]
            for s in result["segments"])
    return fit([Col("start"), Col("end"), Col("action", wrap=12), Col("probability")], rows, width,
               drop=("probability",))


def datasets(found: list[dict], width: int) -> Table:
    """`fpar dataset list`: the name is what `--dataset` takes; an ingesting one shows how
    far it got, a failed one why, in its status; the classes are counted, not named (GTEA61
    has 61)."""
    rows = []
    for d in found:
        ready = d["status"] == "ready"
        rows.append([d["name"], status_text(d), ", ".join(d["users"]) if ready else "",
                     str(len(d["classes"])) if ready else "", str(d["videos"]) if ready else "",
                     str(d["frames"]) if ready else "", yes_no(d["flow"], ready), yes_no(d["maps"], ready),
                     str(d["errors"]) if ready else "", d["origin"]])
    columns = [Col("name"), Col("status", wrap=12), Col("users", wrap=8), Col("classes"), Col("videos"),
               Col("frames"), Col("flow"), Col("maps"), Col("errors"), Col("origin")]
    return fit(columns, rows, width, drop=("origin", "frames", "users", "maps", "flow", "classes", "videos",
                                           "errors", "status"))


def status_text(d: dict) -> str:
    p = d.get("progress") or {}
    if d["status"] == "ingesting" and p:
        return f"ingesting {p['videos_done']}/{p['videos']} videos"
    if d["status"] == "failed" and d.get("error"):
        return f"failed: {d['error'].get('message', '')[:80]}"
    return d["status"]


def yes_no(value: bool, known: bool = True) -> str:
    return ("yes" if value else "no") if known else ""


def counts(detail: dict, width: int) -> Table:
    """`fpar dataset show`: videos per class (rows) and user (columns), a class a user
    lacks as `-` (the report's warning says what that means for training)."""
    users = detail["users"]
    rows = []
    for action in detail["classes"]:
        per_user = [detail["counts"].get(u, {}).get(action, 0) for u in users]
        rows.append([action, *(str(n) if n else "-" for n in per_user), str(sum(per_user))])
    columns = [Col("class"), *(Col(u) for u in users), Col("all")]
    return fit(columns, rows, width, title="videos per class and user")
