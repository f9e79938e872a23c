"""Files written whole or not at all. A writer fills a temporary file beside the target,
which is renamed over it once complete, so a crash, a SIGKILL or a full disk never leaves
a torn file where a reader (a resumed run, a predict worker, a download) would find it,
and the previous file stays until the new one is whole. The temporary name starts with
'.' and is unique per writer, so concurrent writers of one file do not collide.

    with atomic_path(out / "model.onnx") as tmp:
        torch.onnx.export(model, inputs, str(tmp))
"""
from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: Path, *, siblings: Sequence[str] = ()) -> Iterator[Path]:
    """A temporary path in `path`'s folder, with its suffix (for writers that go by it), for
    the block to write: renamed over `path` when the block ends, removed when it raises.

    `siblings`: suffixes of files the writer puts beside the one it is given (OpenVINO
    writes X.bin beside X.xml); they are renamed too, before `path`, so that `path` never
    names a file whose siblings are missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        yield tmp
        for suffix in siblings:
            tmp.with_suffix(suffix).replace(path.with_suffix(suffix))
        tmp.replace(path)
    except BaseException:
        for written in (tmp, *(tmp.with_suffix(suffix) for suffix in siblings)):
            written.unlink(missing_ok=True)
        raise


def write_bytes_atomic(data: bytes, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2))
