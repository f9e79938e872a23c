"""Files written whole or not at all: the new file appears only once complete, a failed
write leaves the previous file and no temporary one, and a full disk says so."""
import errno
import json
import shutil
from types import SimpleNamespace

import pytest
import torch

from fpar_models import checkpoint
from fpar_models.files import atomic_path, write_bytes_atomic, write_json_atomic


def test_the_file_appears_whole_when_the_block_ends(tmp_path):
    target = tmp_path / "sub" / "model.onnx"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".") and tmp.suffix == ".onnx"
        tmp.write_bytes(b"graph")
        assert not target.exists()
    assert target.read_bytes() == b"graph" and [p.name for p in target.parent.iterdir()] == ["model.onnx"]


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary_one(tmp_path):
    target = tmp_path / "metrics.json"
    write_json_atomic({"run": 1}, target)
    with pytest.raises(ValueError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise ValueError("the writer failed")
    assert json.loads(target.read_text()) == {"run": 1} and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    write_bytes_atomic(b"\x00\x01", target)
    assert target.read_bytes() == b"\x00\x01"


def test_sibling_files_move_with_the_file(tmp_path):
    target = tmp_path / "serving-int8.xml"
    with atomic_path(target, siblings=(".bin",)) as tmp:
        tmp.write_text("<net/>")
        tmp.with_suffix(".bin").write_bytes(b"weights")  # as OpenVINO's writer does
    assert sorted(p.name for p in tmp_path.iterdir()) == ["serving-int8.bin", "serving-int8.xml"]
    with pytest.raises(OSError), atomic_path(target, siblings=(".bin",)) as tmp:
        tmp.with_suffix(".bin").write_bytes(b"half")
        raise OSError("writer died")
    assert (tmp_path / "serving-int8.bin").read_bytes() == b"weights" and len(list(tmp_path.iterdir())) == 2


def test_a_full_disk_is_reported_as_such_and_the_previous_checkpoint_stays(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    checkpoint.save_atomic({"epoch": 1}, path)

    def torn(obj, f):
        f.write(b"partial")
        raise RuntimeError("unexpected pos 64")  # what torch's writer says on a full disk

    monkeypatch.setattr(torch, "save", torn)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: SimpleNamespace(total=1 << 30, used=1 << 30, free=0))
    with pytest.raises(OSError, match="no space left .* the previous last.pt is intact") as raised:
        checkpoint.save_atomic({"epoch": 2}, path)
    assert raised.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"epoch": 1} and [p.name for p in tmp_path.iterdir()] == ["last.pt"]
