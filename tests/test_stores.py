"""The stores: a shared folder (file://) and an S3 bucket (a real SeaweedFS server) behave
alike for what the service does with them: publish a model's files, read them (S3 through
a bounded cache), send a run's changed checkpoints after an epoch and fetch them on another
host, delete a model's folder; a model's serving graph, exported by the first host that
serves it, is what the next host serves; a dataset one host sends is what another mirrors."""
import os
import time

import pytest
import redis

from core.object_store import FolderStore, S3Store, open_store
from core.settings import Settings
from core.store.models import ModelRegistry
from core.store.records import ModelRecord
from fpar_models import checkpoint
from fpar_models.models import build_model
from fpar_models.serving import runtimes
from worker.model_cache import ModelCache

from model_helpers import small_config


@pytest.fixture(params=["file", "s3"])
def store(request, tmp_path):
    if request.param == "file":
        return open_store((tmp_path / "shared").as_uri(), tmp_path / "local", tmp_path / "local" / "cache", 1 << 30)
    request.getfixturevalue("s3")
    return open_store(f"s3://fpar/{tmp_path.name}", tmp_path / "local", tmp_path / "local" / "cache", 1 << 30)


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
    store = open_store("s3://fpar/bounded", tmp_path / "local", tmp_path / "local" / "cache", cache_bytes=2500)
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


def test_a_serving_graph_is_exported_once_for_every_host(s3, redis_url, tmp_path, monkeypatch):
    cfg, url = small_config(image_size=32, frames=2), f"s3://fpar/{tmp_path.name}"
    trained = tmp_path / "trained" / "model.pt"
    checkpoint.save_atomic(checkpoint.model_file(build_model(cfg, 3), cfg, list("abc")), trained)
    registry = ModelRegistry(redis.Redis.from_url(redis_url))
    registry.add(ModelRecord(id="m_graph", arch=cfg.model.arch, preset=cfg.preset, classes=list("abc"),
                             best_val_acc=0.5, job_id="tr_graph", created_at=time.time(), frames=cfg.frames,
                             image_size=cfg.image_size, stack_size=cfg.model.stack_size,
                             eval_stacks=cfg.model.eval_stacks, inputs=["rgb"], path="m_graph/model.pt", config=cfg))

    def host(name: str) -> ModelCache:  # its own disk, no dataset: it verifies on random clips
        settings = Settings(model_dir=tmp_path / name, data_dir=tmp_path / "none", model_store=url,
                            inference="onnxruntime")
        return ModelCache(registry, settings)

    first = host("a")
    first.store.put("m_graph/model.pt", trained)
    assert first.get("m_graph").choice.backend == "onnxruntime"
    graphs = first.store._keys("m_graph/compiled/")
    assert [k.rsplit("/", 1)[1] for k in graphs] == [runtimes.graph_path(tmp_path, cfg).name]

    def export_onnx(*args):
        raise AssertionError("the second host exported the graph again")

    monkeypatch.setattr(runtimes, "export_onnx", export_onnx)
    served = host("b").get("m_graph")
    assert served.choice.backend == "onnxruntime" and served.choice.verified, served.choice


def _tree(folder) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_dataset_one_host_sends_is_what_another_mirrors(s3, tmp_path, monkeypatch):
    url = f"s3://fpar/{tmp_path.name}"
    here, there = (open_store(url, tmp_path / h, tmp_path / h) for h in ("a", "b"))  # a data folder each
    frames = "processed_frames2/S1/open/1/rgb"
    _file(tmp_path / "a" / "kit" / frames, "rgb0001.png", b"one")
    _file(tmp_path / "a" / "kit" / frames, "rgb0002.png", b"two")
    _file(tmp_path / "a" / "kit", "manifest.json", b"{}")
    here.send("kit")
    assert there.published() == ["kit"]
    assert _tree(there.mirror("kit")) == _tree(tmp_path / "a" / "kit")

    def fetch(key):
        raise AssertionError(f"{key} fetched again")

    with monkeypatch.context() as m:  # unchanged: one conditional read of its publication, no fetch
        m.setattr(there, "_download", fetch)
        there.mirror("kit")
        assert there._publication("kit/") is None  # (the publication's ETag matched: nothing to compare)

    here.delete("kit/")  # withdrawn: another host's copy goes when it next looks, even after a restart
    assert there.published() == [] and not (tmp_path / "a" / "kit").exists()
    restarted = open_store(url, tmp_path / "b", tmp_path / "b")
    assert _tree(restarted.mirror("kit")) == {}
    _file(tmp_path / "a" / "kit" / frames, "rgb0001.png", b"one")  # made anew under the same name
    here.send("kit")
    there.mirror("kit")
    here.delete("kit/")
    _file(tmp_path / "a" / "kit" / frames, "rgb0001.png", b"ONE!")
    here.send("kit")
    assert _tree(there.mirror("kit")) == {f"{frames}/rgb0001.png": b"ONE!"}

    here.put("incoming/x/S1.mp4", _file(tmp_path / "src", "S1.mp4", b"video"))  # put there by hand, unpublished
    _file(tmp_path / "b" / "incoming" / "x", "labels.csv", b"mine")  # not in the store: not its to remove
    assert _tree(there.mirror("incoming/x")) == {"S1.mp4": b"video", "labels.csv": b"mine"}
    shared = open_store("", tmp_path / "a", tmp_path / "a")  # a shared folder: read in place
    assert shared.mirror("kit") == tmp_path / "a" / "kit" and shared.published() == []


def test_the_store_url_says_which_store(tmp_path):
    assert isinstance(open_store("", tmp_path, tmp_path / "cache"), FolderStore)
    with pytest.raises(ValueError, match="FPAR_MODEL_STORE: 'gs://bucket' is neither"):
        Settings(model_store="gs://bucket")
    with pytest.raises(ValueError, match="is not FPAR_DATA_DIR"):
        Settings(data_dir=tmp_path / "data", data_store=(tmp_path / "elsewhere").as_uri()).open_data_store()
    assert Settings(data_dir=tmp_path, data_store=tmp_path.as_uri()).open_data_store().root == tmp_path
