"""Uploaded archives of recordings, unpacked into the data directory's upload spool with
every entry checked first: a zip or tar, entries that stay inside (no absolute paths, no
`..`), plain files and folders only (no links, devices or fifos), and no more bytes than
the limit — counted as they are written, since an archive's headers can lie."""
from __future__ import annotations

import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from service.errors import field_error

CHUNK = 1 << 20


class _Entry:
    def __init__(self, name: str, size: int, is_dir: bool, open_: Callable[[], IO[bytes]]):
        self.name, self.size, self.is_dir, self.open = name, size, is_dir, open_


def unpack(archive: Path, dest: Path, *, max_bytes: int, max_files: int = 100_000) -> Path:
    """Unpack into dest (which must not exist); returns the folder holding the recordings:
    dest, or its only folder when the archive wraps everything in one."""
    entries = list(_entries(archive))
    if len(entries) > max_files:
        raise field_error(["archive"], f"{len(entries)} entries; at most {max_files}")
    declared = sum(e.size for e in entries)
    if declared > max_bytes:
        raise _too_big(max_bytes)
    dest.mkdir(parents=True)
    try:
        _write(entries, dest, max_bytes)
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError) as e:
        raise field_error(["archive"], f"damaged archive: {e}") from None
    inside = [p for p in dest.iterdir() if not p.name.startswith(".") and not p.name.startswith("__MACOSX")]
    return inside[0] if len(inside) == 1 and inside[0].is_dir() else dest


def _write(entries: list[_Entry], dest: Path, max_bytes: int) -> None:
    written = 0
    for entry in entries:
        target = dest / entry.name
        if entry.is_dir:
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with entry.open() as src, open(target, "wb") as out:
            while chunk := src.read(CHUNK):
                written += len(chunk)
                if written > max_bytes:
                    raise _too_big(max_bytes)
                out.write(chunk)


def _too_big(limit: int):
    return field_error(["archive"], f"expands past {limit / (1 << 20):g} MiB (FPAR_MAX_UNPACKED_MB)", status=413)


def _safe(name: str) -> str:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.parts or name.startswith("/"):
        raise field_error(["archive"], f"entry '{name}' leads outside the archive")
    return str(path)


def _entries(archive: Path) -> Iterator[_Entry]:
    if zipfile.is_zipfile(archive):
        yield from _zip_entries(archive)
        return
    try:
        with tarfile.open(archive, "r:*"):
            pass
    except (tarfile.TarError, EOFError, OSError):
        raise field_error(["archive"], "not a zip or tar archive") from None
    yield from _tar_entries(archive)


def _zip_entries(archive: Path) -> Iterator[_Entry]:
    z = zipfile.ZipFile(archive)
    for info in z.infolist():
        kind = stat.S_IFMT(info.external_attr >> 16)  # 0: made on a system without Unix modes
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise field_error(["archive"], f"entry '{info.filename}' is a link or a special file")
        yield _Entry(_safe(info.filename), info.file_size, info.is_dir(), lambda i=info: z.open(i))


def _tar_entries(archive: Path) -> Iterator[_Entry]:
    t = tarfile.open(archive, "r:*")
    for member in t:
        if not (member.isfile() or member.isdir()):
            raise field_error(["archive"], f"entry '{member.name}' is a link or a special file")
        yield _Entry(_safe(member.name), member.size, member.isdir(), lambda m=member: _tar_file(t, m))


def _tar_file(t: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    f = t.extractfile(member)
    if f is None:
        raise field_error(["archive"], f"entry '{member.name}' cannot be read")
    return f


def remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
