"""What every command shares: the HTTP client (FPAR_URL, FPAR_API_KEY), an API error as
its problem's title and detail, the event streams followed to their end, and the two ways
a result is printed (a table, or the API's JSON with --json)."""
from __future__ import annotations

import json
import os
import time
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from cli.sse import events
from core.store.records import TERMINAL

out, err = Console(), Console(stderr=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="print the API's JSON instead of a table")]


class ApiError(Exception):
    pass


def base_url() -> str:
    return os.environ.get("FPAR_URL", "http://127.0.0.1:8000")


def api() -> httpx.Client:
    headers = {"Authorization": f"Bearer {os.environ['FPAR_API_KEY']}"} if os.environ.get("FPAR_API_KEY") else {}
    return httpx.Client(base_url=base_url(), headers=headers, timeout=120)


def call(method: str, path: str, **kw) -> httpx.Response:
    try:
        with api() as c:
            r = c.request(method, path, **kw)
    except httpx.HTTPError as e:
        raise ApiError(f"cannot reach {base_url()}: {e}") from None
    if r.status_code >= 400:
        raise ApiError(problem(r))
    return r


def problem(r: httpx.Response) -> str:
    """The problem's title and detail, then each field at fault (`loc: msg`) where it names them."""
    try:
        body = r.json()
    except ValueError:
        return f"HTTP {r.status_code}: {r.text[:300]}"
    text = f"{body.get('title', r.status_code)} ({r.status_code}): {body.get('detail', '')}"
    fields = [e for e in body.get("errors") or [] if isinstance(e, dict) and e.get("msg")]
    shown = [f"{'.'.join(map(str, e.get('loc', [])))}: {e['msg']}" for e in fields]
    return text + "".join(f"\n  {line}" for line in shown if line not in text)


def show(data: Any, as_json: bool, table: Table | None = None) -> None:
    if as_json or table is None:
        out.print_json(json.dumps(data))
    else:
        out.print(table)


def queued(accepted: dict, as_json: bool, line: str, follow=None) -> None:
    """What a POST queued: its JSON (--json) or one line; then followed to the end if asked."""
    if as_json:
        show(accepted, True)
    else:
        out.print(line)
    if follow:
        follow(accepted["id"])


def stream(path: str, reconnect_s: float = 60):
    """The stream's events up to its final status. A connection that breaks first (a
    gateway restarting, say) is resumed from the last event's id, for up to a minute."""
    last_id, broken_since, error = None, None, None
    while True:
        try:
            headers = {"Last-Event-ID": last_id} if last_id else {}
            with api() as c, c.stream("GET", path, headers=headers, timeout=httpx.Timeout(30, read=None)) as r:
                if r.status_code >= 400:
                    r.read()
                    raise ApiError(problem(r))
                for e in events(r.iter_lines()):
                    last_id, broken_since = e.id or last_id, None
                    yield e
                    if e.kind == "status" and e.data.get("status") in TERMINAL | {"gone"}:
                        return
            error = "the server closed it early"
        except httpx.HTTPError as e:
            error = e
        broken_since = broken_since or time.monotonic()
        if time.monotonic() - broken_since > reconnect_s:
            raise ApiError(f"the event stream broke and did not come back: {error}")
        time.sleep(1)
