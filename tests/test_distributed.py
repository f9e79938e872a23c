"""One training over several processes (torch.distributed, gloo on this CPU): the ranks'
slices make up one process's batches, and two ranks train a deterministic config to the
curve and the weights one process trains. (A dead rank, a dead worker's ranks, a cancel:
api_tests/test_distributed_jobs.py.)"""
import contextlib
import json
import os
import subprocess
import sys

import psutil
import pytest
import torch
from pydantic import ValidationError

from fpar_models.checkpoint import load_model
from fpar_models.data.dataset import EpochSampler
from fpar_models.data.loaders import RankBatches
from fpar_models.distributed import Group
from fpar_models.train import train

from model_helpers import small_config

# no dropout and no BatchNorm in train mode: the classifier stays frozen, so nothing in a
# step is random and two ranks must give what one process gives, up to float summation
# order. SGD keeps that order's noise at its size; Adam divides it by the root of a
# gradient's running square, and a weight whose gradient is all but 0 may move by up to
# a step either way (seen: 5e-4 after 14 steps at lr 1e-3, with equal losses)
DETERMINISTIC = {"image_size": 32, "frames": 2, "batch_size": 4, "train_users": ["S1"],  # 18 clips: 4 + 4 + 4 + 4 + 2
                 "stages": [{"epochs": 1, "train": ["convlstm"], "lr": 1e-2, "optimizer": "sgd"},
                            {"epochs": 1, "train": ["convlstm", "layer4"], "lr": 1e-2, "optimizer": "sgd"}]}


@pytest.mark.parametrize("size,batch,world", [(54, 4, 2), (54, 8, 2), (10, 6, 3), (7, 4, 1)])
def test_the_ranks_slices_make_up_one_process_batches(size, batch, world):
    def batches(group):
        sampler = RankBatches(EpochSampler(size, shuffle=True, seed=3), batch, group)
        sampler.set_epoch(5)
        return sampler

    one = list(batches(Group()))
    ranks = [batches(Group(r, world)) for r in range(world)]
    shares = [list(r) for r in ranks]
    assert [len(s) for s in shares] == [len(r) for r in ranks]
    for step, whole in enumerate(one):
        assert sum((s[step] for s in shares if step < len(s)), []) == whole
        assert ranks[0].global_size(step) == len(whole)
    assert all(len(s) in (len(one), len(one) - 1) for s in shares) and ranks[0].steps == len(one)
    # training: a rank with nothing left in the last batch steps with the others, on a stand-in it weighs 0
    for r, rank in enumerate(ranks):
        rank.stand_ins = True
        assert len(list(rank)) == len(rank) == len(one)
        assert [rank.mine(step) for step in range(len(one))] == [len(s) for s in shares[r]] + [0] * (
            len(one) - len(shares[r]))


def test_devices_must_split_the_batch():
    with pytest.raises(ValidationError, match="devices"):
        small_config(batch_size=6, devices=4)
    assert small_config(batch_size=6, devices=3).devices == 3


@pytest.fixture
def cli():
    """Runs the trainer's CLI; whatever of it a failed test leaves is killed."""
    started = []

    def run(data_dir, out, request, *extra, **popen):
        (out / "cfg.json").write_text(json.dumps(request))
        env = {**os.environ, "FPAR_TORCH_THREADS": "1"}
        started.append(subprocess.Popen([sys.executable, "-m", "fpar_models.train", "--config",
                                         str(out / "cfg.json"), "--data-dir", str(data_dir), "--out", str(out),
                                         *extra], env=env, **popen))
        return started[-1]
    yield run
    for proc in started:
        with contextlib.suppress(psutil.Error):
            parent = psutil.Process(proc.pid)
            for p in [*parent.children(recursive=True), parent]:
                p.kill()


def test_two_ranks_train_what_one_process_trains(data_dir, tmp_path, cli):
    request = {"preset": "egornn-attention", "dataset": "synthetic", "pretrained": "none",
               "model": {"mem_size": 32}, **DETERMINISTIC}
    two = tmp_path / "two"
    two.mkdir()
    proc = cli(data_dir, two, request, "--devices", "2", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    one = train(small_config(model={"mem_size": 32}, **DETERMINISTIC), data_dir, tmp_path / "one")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    rows = json.loads((two / "metrics.json").read_text())["history"]
    assert len(out.strip().splitlines()) == len(rows) + 1  # rank 0 alone reports: a row per epoch, the result
    assert [(r["stage"], r["epoch"]) for r in rows] == [(1, 1), (2, 1)]
    for mine, theirs in zip(rows, one.history):
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
            assert mine[key] == pytest.approx(theirs[key], rel=1e-4, abs=1e-6), (mine, theirs, key)
    assert rows[0]["train_loss"] != pytest.approx(rows[-1]["train_loss"], rel=1e-3)  # it did learn something
    weights = load_model(two / "model.pt")[0].state_dict()
    for name, w in load_model(one.model_path)[0].state_dict().items():
        assert torch.allclose(weights[name], w, atol=1e-5), name
