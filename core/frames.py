"""How prepared frames travel from the gateway to a worker: one file per prediction in a
spool on the shared data volume (FPAR_DATA_DIR/.frames), holding one JSON header line
(name, dtype, shape of each array), then the raw bytes. Nothing to unpickle, no zip to
inflate, and reading is zero-copy (np.frombuffer).

Not through Redis where a data folder is shared: with its append-only file, a clip's
~600 KB cost Redis ~2 ms of CPU (appending it, then rewriting the log) and each client
~0.5 ms more; a file costs ~0.2 ms on each side, and Redis keeps only the job's state. The
worker that ends a prediction removes its file; whatever is left behind (a gateway that
died between the file and the job, say) the workers' reaper sweeps once it is older than
FPAR_PREDICT_TTL_S. Hosts that share no data folder (an s3:// FPAR_DATA_STORE) pass the
same bytes through Redis instead (`RedisFrames`), which expires them with the prediction:
a clip is too small and too short-lived for an object store's round trips.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

ALLOWED = {"uint8"}  # prepared frames are uint8; anything else is refused on read
SPOOL = ".frames"
KEY = "fpar:frames:"


def header(arrays: dict[str, np.ndarray]) -> bytes:
    return json.dumps([{"name": k, "dtype": str(a.dtype), "shape": list(a.shape)} for k, a in arrays.items()]
                      ).encode() + b"\n"


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


def pack(arrays: dict[str, np.ndarray]) -> list:
    """The header and each array's bytes (no copy), to be written one after another."""
    return [header(arrays), *(memoryview(np.ascontiguousarray(a)).cast("B") for a in arrays.values())]


class FrameSpool:
    def __init__(self, data_dir: Path):
        self.folder = Path(data_dir) / SPOOL

    def path(self, job_id: str) -> Path:
        return self.folder / job_id

    def put(self, job_id: str, arrays: dict[str, np.ndarray]) -> None:
        """Written whole under a temporary name, then renamed: a reader never meets half a clip."""
        self.folder.mkdir(parents=True, exist_ok=True)
        part = self.folder / f"{job_id}.part"
        try:
            with open(part, "wb") as f:
                f.writelines(pack(arrays))
            os.replace(part, self.path(job_id))
        except BaseException:
            part.unlink(missing_ok=True)
            raise

    def get(self, job_id: str) -> dict[str, np.ndarray] | None:
        """The clip's arrays; None when the file is gone (the prediction expired, or ended)."""
        try:
            return unpack(self.path(job_id).read_bytes())
        except FileNotFoundError:
            return None

    def remove(self, *job_ids: str) -> None:
        for job_id in job_ids:
            self.path(job_id).unlink(missing_ok=True)

    def sweep(self, older_than_s: float) -> int:
        """Remove the files (and half-written ones) older than that; how many went."""
        cutoff, gone = time.time() - older_than_s, 0
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            return 0
        for entry in entries:
            try:
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    gone += 1
            except FileNotFoundError:
                pass  # removed meanwhile by whoever ended its job
        return gone


class RedisFrames:
    """The spool's bytes under `fpar:frames:{job}` in Redis, expiring with the prediction."""

    def __init__(self, client, ttl_s: int):
        self.client, self.ttl_s = client, ttl_s

    def put(self, job_id: str, arrays: dict[str, np.ndarray]) -> None:
        self.client.set(f"{KEY}{job_id}", b"".join(pack(arrays)), ex=self.ttl_s)

    def get(self, job_id: str) -> dict[str, np.ndarray] | None:
        blob = self.client.get(f"{KEY}{job_id}")
        return None if blob is None else unpack(blob)

    def remove(self, *job_ids: str) -> None:
        if job_ids:
            self.client.delete(*(f"{KEY}{j}" for j in job_ids))

    def sweep(self, older_than_s: float) -> int:
        return 0  # Redis expires them


def open_frames(settings, client) -> FrameSpool | RedisFrames:
    """The spool where the data folder is shared, else Redis (`client`)."""
    if settings.data.shared:
        return FrameSpool(settings.data_dir)
    return RedisFrames(client, settings.predict_ttl_s)
