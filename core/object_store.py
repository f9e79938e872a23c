"""Where trained models and datasets live, and what a training needs to resume on another
host.

`FPAR_MODEL_STORE` is a URL. `file:///path` (the default: `FPAR_MODEL_DIR` itself) is a
folder every process shares, as a volume: its files are read where they lie. `s3://bucket/
prefix` is an object store (the endpoint in `AWS_ENDPOINT_URL`, credentials in the usual
AWS variables): each process keeps what it read in a bounded local cache under
`FPAR_MODEL_DIR/cache`, least recently used out first, and writes its checkpoints locally
before it sends them. Keys are paths relative to the store: `m_x/model.pt`,
`m_x/export/onnx.zip`, `runs/tr_x/last.pt`. What is under a model's id never changes once
written, and a model is registered (visible) only after all its files are up, so a cached
copy is never stale.

`FPAR_DATA_STORE` is the same kind of store for `FPAR_DATA_DIR`: unset, the data folder is
shared as it is; `s3://...`, each process's data folder is its copy of the store. A dataset
is sent whole (`send`) and then published: `.published/{name}.json`, written last, lists its
files and sizes, so a reader (`mirror`) fetches exactly what is missing or changed, and one
conditional GET tells it that nothing is.
"""
from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from fpar_models.files import atomic_path


class ObjectStore(Protocol):
    url: str
    shared: bool  # its files are read where they lie (a folder every process sees), not copied

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

    def mirror(self, prefix: str) -> Path:
        """The local folder of `prefix` (a dataset, a folder of recordings) holding what the
        store holds under it, sub-folders too."""

    def send(self, prefix: str) -> None:
        """Send the local folder of `prefix` to the store whole, then publish it (a dataset
        just made): a `mirror` elsewhere then finds it complete."""

    def published(self) -> list[str]:
        """The names of the folders `send` published."""


class FolderStore:
    """A shared folder: keys are its paths, a run's checkpoints are written in place."""
    shared = True

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

    def mirror(self, prefix: str) -> Path:
        return self.root / prefix

    def send(self, prefix: str) -> None:
        pass  # written in place

    def published(self) -> list[str]:
        return []  # its folders are what it holds

    def pull(self, prefix: str, folder: Path) -> None:
        source = self.root / prefix
        if source.resolve() != Path(folder).resolve() and source.is_dir():
            for file in source.iterdir():
                if file.is_file() and not file.name.startswith("."):
                    with atomic_path(Path(folder) / file.name) as tmp:
                        shutil.copyfile(file, tmp)


class S3Store:
    """An S3 bucket (and a key prefix in it), read through a local cache: for models
    bounded, least recently used out first; for data the data folder, kept whole."""
    shared = False

    def __init__(self, bucket: str, prefix: str, cache: Path, cache_bytes: int | None):
        import boto3  # only where an S3 store is configured

        self.bucket, self.prefix, self.cache, self.cache_bytes = bucket, prefix, Path(cache), cache_bytes
        self.url = f"s3://{bucket}/{prefix}"
        self.client = boto3.client("s3")
        self._pushed: dict[Path, float] = {}  # a pushed file's mtime
        self._seen: dict[str, str] = {}  # a publication's ETag, when mirrored last

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
        if prefix.endswith("/"):  # unpublished first: a half-deleted folder is never mirrored
            self.client.delete_object(Bucket=self.bucket, Key=self._key(publication(prefix)))
        keys = self._keys(prefix)
        for i in range(0, len(keys), 1000):  # S3's most per request
            self.client.delete_objects(Bucket=self.bucket, Delete={
                "Objects": [{"Key": self._key(k)} for k in keys[i:i + 1000]], "Quiet": True})
        remove(self.cache, prefix)
        if prefix.endswith("/"):
            self._note(prefix).unlink(missing_ok=True)

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

    def mirror(self, prefix: str) -> Path:
        prefix = prefix.rstrip("/") + "/"
        local, note = self.cache / prefix, self._note(prefix)
        found = self._publication(prefix)
        if found is None:  # the publication read last time: nothing changed
            return local
        if found is MISSING:
            if not note.is_file():  # a folder put there by hand, or nothing: what the bucket lists
                self._fetch_missing(self._listing(prefix))
                return local
            found = (None, b'{"files": {}}')  # withdrawn since this copy was made: the copy goes
        etag, body = found
        listed = {prefix + rel: size for rel, size in json.loads(body)["files"].items()}
        self._fetch_missing(listed)
        for path in [p for p in local.rglob("*") if p.is_file()] if local.is_dir() else []:
            if path.relative_to(self.cache).as_posix() not in listed:  # not in it (any more)
                path.unlink(missing_ok=True)
        if etag is None:
            note.unlink(missing_ok=True)
        else:  # only once whole: a mirror that failed half-way is taken up again next time
            with atomic_path(note) as tmp:
                tmp.write_bytes(body)
            self._seen[prefix] = etag
        return local

    def _note(self, prefix: str) -> Path:
        """This copy's record of the publication it mirrors: its withdrawal then removes the
        copy, even when seen after a restart."""
        return self.cache / publication(prefix)

    def _publication(self, prefix: str):
        """(ETag, body) of the folder's publication; None when it is the one this process
        mirrored last (a conditional GET), MISSING when there is none."""
        from botocore.exceptions import ClientError
        seen = self._seen.get(prefix)
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._key(publication(prefix)),
                                            **({"IfNoneMatch": seen} if seen else {}))
        except ClientError as e:
            if e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 304:
                return None
            if not missing(e):
                raise
            self._seen.pop(prefix, None)
            return MISSING
        return answer["ETag"], answer["Body"].read()

    def _listing(self, prefix: str) -> dict[str, int]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(prefix))
        return {o["Key"][len(self.prefix):]: o["Size"] for page in pages for o in page.get("Contents", [])}

    def _fetch_missing(self, listed: dict[str, int]) -> None:
        wanted = [k for k, size in listed.items() if not _same(self.cache / k, size)]
        with ThreadPoolExecutor(8) as pool:  # (boto3's clients are thread-safe)
            list(pool.map(self._download, wanted))

    def _download(self, key: str) -> None:
        """One of many small files (a dataset's frames): a plain GET, without the transfer
        manager's per-file threads, which cost ~10 ms a file."""
        with atomic_path(self.cache / key) as tmp, open(tmp, "wb") as out:
            for chunk in self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].iter_chunks(1 << 20):
                out.write(chunk)

    def send(self, prefix: str) -> None:
        prefix = prefix.rstrip("/") + "/"
        local = self.cache / prefix
        files = {p.relative_to(local).as_posix(): p for p in sorted(local.rglob("*"))
                 if p.is_file() and not p.name.startswith(".")}

        def send_one(rel: str) -> None:
            file = files[rel]
            if file.stat().st_size > SMALL:
                self.put(prefix + rel, file)
            else:  # (a plain PUT: see _download)
                self.client.put_object(Bucket=self.bucket, Key=self._key(prefix + rel), Body=file.read_bytes())

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(send_one, files))
        index = json.dumps({"files": {rel: p.stat().st_size for rel, p in files.items()}}).encode()
        self.client.put_object(Bucket=self.bucket, Key=self._key(publication(prefix)), Body=index)

    def published(self) -> list[str]:
        return sorted(k[len(PUBLISHED):-len(".json")] for k in self._keys(PUBLISHED, direct=True)
                      if k.endswith(".json"))

    def _evict(self, keep: set[Path]) -> None:
        """Least recently used files out until the cache fits its bound (never those in `keep`)."""
        if self.cache_bytes is None:  # a data folder: datasets are kept whole
            return
        files = [p for p in self.cache.rglob("*") if p.is_file()]
        total = sum(p.stat().st_size for p in files)
        for file in sorted(files, key=lambda p: p.stat().st_mtime):
            if total <= self.cache_bytes:
                break
            if file not in keep:
                total -= file.stat().st_size
                file.unlink(missing_ok=True)


PUBLISHED = ".published/"  # a sent folder's list of files, written after them
MISSING = object()
SMALL = 8 << 20  # bytes: sent in one PUT


def publication(prefix: str) -> str:
    """The key of a sent folder's publication."""
    return PUBLISHED + prefix.rstrip("/") + ".json"


def _same(path: Path, size: int) -> bool:
    return path.is_file() and path.stat().st_size == size


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


def open_store(url: str, folder: Path, cache: Path, cache_bytes: int | None = None) -> ObjectStore:
    """The store a URL names: '' or file:// a shared folder (by default `folder`), s3:// a
    bucket read through `cache` (bounded by cache_bytes; None: kept whole)."""
    parsed = urlparse(url)
    if not url or parsed.scheme == "file":
        return FolderStore(Path(parsed.path) if url else folder)
    if parsed.scheme == "s3" and parsed.netloc:
        prefix = parsed.path.strip("/")
        return S3Store(parsed.netloc, f"{prefix}/" if prefix else "", cache, cache_bytes)
    raise ValueError(f"{url!r} is neither file:///path nor s3://bucket[/prefix]")
