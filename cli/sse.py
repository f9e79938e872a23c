"""Reading a server-sent event stream (text/event-stream) from an httpx response."""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass
class Event:
    kind: str
    data: Any
    id: str | None = None


def events(lines: Iterable[str]) -> Iterator[Event]:
    """Events from the stream's lines (`response.iter_lines()`); comments are skipped."""
    kind, data, event_id = "message", [], None
    for line in lines:
        if not line:
            if data:
                yield Event(kind, json.loads("\n".join(data)), event_id)
            kind, data = "message", []
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            kind = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            event_id = value
