"""Uploaded archives are unpacked only when every entry is safe, and never past the limit."""
import io
import stat
import tarfile
import zipfile

import pytest

from service import archives
from service.errors import Problem


def _zip(path, entries: dict[str, bytes], link: str | None = None):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
        if link:
            info = zipfile.ZipInfo(link)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, "/etc/passwd")
    return path


def _refused(archive, dest, **kw) -> Problem:
    with pytest.raises(Problem) as e:
        archives.unpack(archive, dest, max_bytes=kw.get("max_bytes", 1 << 20))
    assert e.value.errors[0]["loc"] == ["archive"], e.value.errors
    return e.value


def test_a_zip_wrapped_in_one_folder_unpacks_to_that_folder(tmp_path):
    archive = _zip(tmp_path / "a.zip", {"kitchen/labels.csv": b"video,label\n", "kitchen/v/a.mp4": b"x"})
    source = archives.unpack(archive, tmp_path / "out", max_bytes=1 << 20)
    assert source == tmp_path / "out" / "kitchen"
    assert (source / "v" / "a.mp4").read_bytes() == b"x"


def test_a_tar_unpacks(tmp_path):
    path = tmp_path / "a.tar.gz"
    with tarfile.open(path, "w:gz") as t:
        for name in ("labels.csv", "b.mp4"):
            info = tarfile.TarInfo(name)
            info.size = 3
            t.addfile(info, io.BytesIO(b"abc"))
    source = archives.unpack(path, tmp_path / "out", max_bytes=1 << 20)
    assert sorted(p.name for p in source.iterdir()) == ["b.mp4", "labels.csv"]


@pytest.mark.parametrize("name", ["../evil.csv", "/etc/evil", "a/../../evil"])
def test_entries_that_leave_the_archive_are_refused(tmp_path, name):
    problem = _refused(_zip(tmp_path / "a.zip", {name: b"x"}), tmp_path / "out")
    assert "outside" in problem.detail or "outside" in problem.errors[0]["msg"]
    assert not (tmp_path / "evil.csv").exists()


def test_links_are_refused_in_zip_and_tar(tmp_path):
    _refused(_zip(tmp_path / "a.zip", {"a.csv": b"x"}, link="passwd"), tmp_path / "out1")
    path = tmp_path / "a.tar"
    with tarfile.open(path, "w") as t:
        info = tarfile.TarInfo("passwd")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        t.addfile(info)
    _refused(path, tmp_path / "out2")


def test_a_bomb_stops_at_the_limit_even_when_its_headers_lie(tmp_path):
    archive = _zip(tmp_path / "a.zip", {"big.bin": b"\0" * (4 << 20)})
    problem = _refused(archive, tmp_path / "out")
    assert problem.status == 413
    # headers claiming less than the truth: the bytes are counted as they are written
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as z:
        info = z.infolist()[0]
    lied = data.replace((4 << 20).to_bytes(4, "little"), (100).to_bytes(4, "little"))
    (tmp_path / "lie.zip").write_bytes(bytes(lied))
    with pytest.raises(Problem) as e:
        archives.unpack(tmp_path / "lie.zip", tmp_path / "out2", max_bytes=1 << 20)
    assert e.value.status in (413, 422) and info.file_size == 4 << 20


def test_not_an_archive(tmp_path):
    (tmp_path / "a.zip").write_bytes(b"hello, not a zip")
    assert "not a zip or tar" in _refused(tmp_path / "a.zip", tmp_path / "out").errors[0]["msg"]
