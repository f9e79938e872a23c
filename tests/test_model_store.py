"""The model store: a shared folder (file://) and an S3 bucket (a real SeaweedFS server)
behave alike for what the service does with them: publish a model's files, read them
(S3 through a bounded cache), send a run's changed checkpoints after an epoch and fetch
them on another host, delete a model's folder."""
import os

import pytest

from core.model_store import FolderStore, S3Store, open_store


@pytest.fixture(params=["file", "s3"])
def store(request, tmp_path):
    if request.param == "file":
        return open_store((tmp_path / "shared").as_uri(), tmp_path / "local", 1 << 30)
    request.getfixturevalue("s3")
    return open_store(f"s3://fpar/{tmp_path.name}", tmp_path / "local", 1 << 30)


def _file(folder, name, data: bytes):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return folder / name


def test_a_published_model_reads_back_whole(store, tmp_path):
    out = tmp_path / "run"
    for name, data in (("stage1_best.pt", b"s1"), ("metrics.json", b"{}"), ("model.pt", b"weights")):
        store.put(f"m_a/{name}", _file(out, name, data))
    store.put("m_a/export/onnx.zip", _file(out, "onnx.zip", b"zip"))
    assert store.exists("m_a/model.pt") and not store.exists("m_a/nothing")
    assert store.path("m_a/model.pt").read_bytes() == b"weights"
    folder = store.folder("m_a/")  # the model's own files, not its exports'
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == {
        "stage1_best.pt": b"s1", "metrics.json": b"{}", "model.pt": b"weights"}
    with pytest.raises(FileNotFoundError, match="m_b/model.pt"):
        store.path("m_b/model.pt")
    store.delete("m_a/")
    assert not store.exists("m_a/model.pt") and not store.exists("m_a/export/onnx.zip")


def test_a_run_s_checkpoints_move_to_another_host(store, tmp_path):
    here, there = tmp_path / "host-a" / "runs" / "tr_1", tmp_path / "host-b" / "runs" / "tr_1"
    _file(here, "stage1_best.pt", b"best")
    _file(here, "last.pt", b"epoch 1")
    _file(here, ".last.123.tmp.pt", b"half")  # a write in progress is not sent
    store.push(here, "runs/tr_1/", last="last.pt")
    _file(here, "last.pt", b"epoch 2")
    os.utime(here / "last.pt", (1, 1))  # (another mtime, whatever the clock's resolution)
    store.push(here, "runs/tr_1/", last="last.pt")
    there.mkdir(parents=True)
    store.pull("runs/tr_1/", there)
    assert {p.name: p.read_bytes() for p in there.iterdir()} == {"stage1_best.pt": b"best", "last.pt": b"epoch 2"}
    store.delete("runs/tr_1/")
    assert not store.exists("runs/tr_1/last.pt")


def test_the_s3_cache_keeps_to_its_bound_least_recently_used_out_first(s3, tmp_path):
    store = open_store("s3://fpar/bounded", tmp_path / "local", cache_bytes=2500)
    assert isinstance(store, S3Store)
    for name in "abc":
        store.put(f"m_{name}/model.pt", _file(tmp_path / "src", name, bytes(1000)))
    a = store.path("m_a/model.pt")
    store.path("m_b/model.pt")
    os.utime(a)  # a read again: b is now the least recently used
    store.path("m_c/model.pt")
    cached = sorted(p.parent.name for p in (tmp_path / "local" / "cache").rglob("model.pt"))
    assert cached == ["m_a", "m_c"]
    assert store.path("m_b/model.pt").read_bytes() == bytes(1000)  # fetched again


def test_the_store_url_says_which_store(tmp_path):
    assert isinstance(open_store("", tmp_path, 1), FolderStore)
    with pytest.raises(ValueError, match="FPAR_MODEL_STORE"):
        open_store("gs://bucket", tmp_path, 1)
