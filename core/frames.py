"""How prepared frames travel from the gateway to a worker through Redis: one JSON
header line (name, dtype, shape of each array), then the raw bytes. Nothing to
unpickle, no zip to inflate, and reading is zero-copy (np.frombuffer)."""
from __future__ import annotations

import json

import numpy as np

ALLOWED = {"uint8"}  # prepared frames are uint8; anything else is refused on read


def pack(arrays: dict[str, np.ndarray]) -> bytes:
    header = [{"name": k, "dtype": str(a.dtype), "shape": list(a.shape)} for k, a in arrays.items()]
    return json.dumps(header).encode() + b"\n" + b"".join(np.ascontiguousarray(a).tobytes() for a in arrays.values())


def unpack(blob: bytes) -> dict[str, np.ndarray]:
    head, _, body = blob.partition(b"\n")
    out, offset = {}, 0
    for entry in json.loads(head):
        if entry["dtype"] not in ALLOWED:
            raise ValueError(f"unexpected dtype {entry['dtype']!r} in frames")
        count = int(np.prod(entry["shape"]))
        out[entry["name"]] = np.frombuffer(body, dtype=entry["dtype"], count=count,
                                           offset=offset).reshape(entry["shape"])
        offset += count
    return out
