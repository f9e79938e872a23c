"""Where trained models live, and what a training needs to resume on another host.

`FPAR_MODEL_STORE` is a URL. `file:///path` (the default: `FPAR_MODEL_DIR` itself) is a
folder every process shares, as a volume: its files are read where they lie. `s3://bucket/
prefix` is an object store (the endpoint in `AWS_ENDPOINT_URL`, credentials in the usual
AWS variables): each process keeps what it read in a bounded local cache under
`FPAR_MODEL_DIR/cache`, least recently used out first, and writes its checkpoints locally
before it sends them.

Keys are paths relative to the store: `m_x/model.pt`, `m_x/export/onnx.zip`,
`runs/tr_x/last.pt`. What is under a model's id never changes once written, and a model is
registered (visible) only after all its files are up, so a cached copy is never stale.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from fpar_models.files import atomic_path


class ModelStore(Protocol):
    url: str

    def path(self, key: str) -> Path:
        """A local file with the object's bytes (FileNotFoundError when there is none)."""

    def folder(self, prefix: str) -> Path:
        """A local folder with the files directly under `prefix` (a model's)."""

    def exists(self, key: str) -> bool: ...

    def put(self, key: str, file: Path) -> None:
        """Write `file` under `key`, whole or not at all."""

    def delete(self, prefix: str) -> None:
        """Remove every object under `prefix` (a folder's worth: it ends with '/')."""

    def push(self, folder: Path, prefix: str, last: str = "") -> None:
        """Send the files of a local folder that changed since they were last pushed or
        pulled (a run's checkpoints after an epoch), in name order with `last` (the one that
        names the others) after all."""

    def pull(self, prefix: str, folder: Path) -> None:
        """Fetch the objects directly under `prefix` into a local folder (a run to resume,
        a model's compiled graphs)."""


class FolderStore:
    """A shared folder: keys are its paths, a run's checkpoints are written in place."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.url = self.root.resolve().as_uri()

    def path(self, key: str) -> Path:
        path = self.root / key
        if not path.is_file():
            raise FileNotFoundError(f"{key} is not in the model store ({self.url})")
        return path

    def folder(self, prefix: str) -> Path:
        return self.root / prefix

    def exists(self, key: str) -> bool:
        return (self.root / key).is_file()

    def put(self, key: str, file: Path) -> None:
        target = self.root / key
        if Path(file).resolve() != target.resolve():
            with atomic_path(target) as tmp:
                shutil.copyfile(file, tmp)

    def delete(self, prefix: str) -> None:
        remove(self.root, prefix)

    def push(self, folder: Path, prefix: str, last: str = "") -> None:
        if Path(folder).resolve() != (self.root / prefix).resolve():  # (a run's folder is in the store)
            for file in files_to_push(folder, last):
                self.put(prefix + file.name, file)

    def pull(self, prefix: str, folder: Path) -> None:
        source = self.root / prefix
        if source.resolve() != Path(folder).resolve() and source.is_dir():
            for file in source.iterdir():
                if file.is_file() and not file.name.startswith("."):
                    with atomic_path(Path(folder) / file.name) as tmp:
                        shutil.copyfile(file, tmp)


class S3Store:
    """An S3 bucket (and a key prefix in it), read through a local LRU cache."""

    def __init__(self, bucket: str, prefix: str, cache: Path, cache_bytes: int):
        import boto3  # only where an S3 store is configured

        self.bucket, self.prefix, self.cache, self.cache_bytes = bucket, prefix, Path(cache), cache_bytes
        self.url = f"s3://{bucket}/{prefix}"
        self.client = boto3.client("s3")
        self._pushed: dict[Path, float] = {}  # a pushed file's mtime

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _keys(self, prefix: str, *, direct: bool = False) -> list[str]:
        """The store's keys under `prefix`, relative to the store (direct: not in sub-folders)."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key(prefix), **({"Delimiter": "/"} if direct else {}))
        return [o["Key"][len(self.prefix):] for page in pages for o in page.get("Contents", [])]

    def path(self, key: str) -> Path:
        local = self._fetch(key)
        self._evict(keep={local})
        return local

    def folder(self, prefix: str) -> Path:
        self._evict(keep={self._fetch(key) for key in self._keys(prefix, direct=True)})
        return self.cache / prefix

    def _fetch(self, key: str) -> Path:
        local = self.cache / key
        if local.is_file():
            os.utime(local)  # recently used
            return local
        from botocore.exceptions import ClientError
        try:
            with atomic_path(local) as tmp:
                self.client.download_file(self.bucket, self._key(key), str(tmp))
        except ClientError as e:
            if missing(e):
                raise FileNotFoundError(f"{key} is not in the model store ({self.url})") from None
            raise
        return local

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as e:
            if missing(e):
                return False
            raise

    def put(self, key: str, file: Path) -> None:
        self.client.upload_file(str(file), self.bucket, self._key(key))  # an object appears whole

    def delete(self, prefix: str) -> None:
        keys = self._keys(prefix)
        for i in range(0, len(keys), 1000):  # S3's most per request
            self.client.delete_objects(Bucket=self.bucket, Delete={
                "Objects": [{"Key": self._key(k)} for k in keys[i:i + 1000]], "Quiet": True})
        remove(self.cache, prefix)

    def push(self, folder: Path, prefix: str, last: str = "") -> None:
        for file in files_to_push(folder, last):
            mtime = file.stat().st_mtime
            if self._pushed.get(file) != mtime:
                self.put(prefix + file.name, file)
                self._pushed[file] = mtime

    def pull(self, prefix: str, folder: Path) -> None:
        for key in self._keys(prefix, direct=True):
            local = Path(folder) / key[len(prefix):]
            with atomic_path(local) as tmp:
                self.client.download_file(self.bucket, self._key(key), str(tmp))
            self._pushed[local] = local.stat().st_mtime  # as in the store: not sent back unchanged

    def _evict(self, keep: set[Path]) -> None:
        """Least recently used files out until the cache fits its bound (never those in `keep`)."""
        files = [p for p in self.cache.rglob("*") if p.is_file()]
        total = sum(p.stat().st_size for p in files)
        for file in sorted(files, key=lambda p: p.stat().st_mtime):
            if total <= self.cache_bytes:
                break
            if file not in keep:
                total -= file.stat().st_size
                file.unlink(missing_ok=True)


def missing(e) -> bool:
    """An S3 error that says there is no such object."""
    return e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


def remove(root: Path, prefix: str) -> None:
    """A key's file under root, or a prefix's folder (a prefix ends with '/')."""
    target = root / prefix
    if prefix.endswith("/"):
        shutil.rmtree(target, ignore_errors=True)
    else:
        target.unlink(missing_ok=True)


def files_to_push(folder: Path, last: str) -> list[Path]:
    """A folder's files (not the temporary ones of a write in progress), `last` last."""
    files = [p for p in Path(folder).iterdir() if p.is_file() and not p.name.startswith(".")]
    return sorted(files, key=lambda p: (p.name == last, p.name))


def open_store(url: str, model_dir: Path, cache_bytes: int) -> ModelStore:
    """The store a URL names: '' or file:// a folder (by default the model folder), s3:// a bucket."""
    parsed = urlparse(url)
    if not url or parsed.scheme == "file":
        return FolderStore(Path(parsed.path) if url else model_dir)
    if parsed.scheme == "s3" and parsed.netloc:
        prefix = parsed.path.strip("/")
        return S3Store(parsed.netloc, f"{prefix}/" if prefix else "", Path(model_dir) / "cache", cache_bytes)
    raise ValueError(f"FPAR_MODEL_STORE: {url!r} is neither file:///path nor s3://bucket[/prefix]")
