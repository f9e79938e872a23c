import base64
import io
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from fpar_models import checkpoint
from fpar_models.checkpoint import load_model
from fpar_models.compute import Compute
from fpar_models.data.gtea61 import class_names
from fpar_models.data.loaders import make_loaders
from fpar_models.data.transforms import prepare_frames
from fpar_models.serving import Clip, Predictor
from fpar_models.train import LAST, Callbacks, Cancelled, train

from model_helpers import SMALL, small_config

ROW_KEYS = {"stage", "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr"}


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    """A tiny two-stage egornn-attention run through the CLI, as a researcher would."""
    out = tmp_path_factory.mktemp("run")
    request = {"preset": "egornn-attention", "dataset": "synthetic", **SMALL,
               "stages": [{"epochs": 1}, {"epochs": 1}]}
    cfg_file = out / "cfg.json"
    cfg_file.write_text(json.dumps(request))
    subprocess.run([sys.executable, "-m", "fpar_models.train", "--config", str(cfg_file), "--data-dir",
                    str(data_dir), "--out", str(out)], check=True, capture_output=True)
    return out


def test_cli_writes_metrics_and_model(trained):
    metrics = json.loads((trained / "metrics.json").read_text())
    assert 0 <= metrics["best_val_acc"] <= 1
    assert [(r["stage"], r["epoch"]) for r in metrics["history"]] == [(1, 1), (2, 1)]
    assert all(ROW_KEYS <= set(r) for r in metrics["history"])
    assert all(0 <= r["val_acc"] <= 1 for r in metrics["history"])
    model, meta = load_model(trained / "model.pt")
    assert meta["best_val_acc"] == metrics["best_val_acc"] == max(r["val_acc"] for r in metrics["history"] if r["stage"] == 2)
    assert len(meta["classes"]) == 6 and meta["config"].image_size == 64


def test_checkpoint_round_trips(trained, tmp_path):
    model, meta = load_model(trained / "model.pt")
    path = tmp_path / "copy.pt"
    checkpoint.save_atomic(checkpoint.model_file(model, meta["config"], meta["classes"], best_val_acc=0.5), path)
    again, meta2 = load_model(path)
    x = torch.randn(1, 4, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x).logits, again(x).logits)
    assert meta2["classes"] == meta["classes"] and meta2["config"] == meta["config"]


def test_stage_best_checkpoints_describe_themselves(trained):
    metrics = json.loads((trained / "metrics.json").read_text())
    for stage in (1, 2):
        best = checkpoint.load(trained / f"stage{stage}_best.pt", checkpoint.TRAINING_FORMAT)
        row = max((r for r in metrics["history"] if r["stage"] == stage), key=lambda r: r["val_acc"])
        assert (best["stage"], best["epoch"], best["val_acc"]) == (stage, row["epoch"], row["val_acc"])
        assert best["classes"] == metrics["classes"] and best["config"]["image_size"] == 64


def test_checkpoints_refuse_pickled_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    path = tmp_path / "evil.pt"
    torch.save({"format": checkpoint.MODEL_FORMAT, "x": Evil()}, path)
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        checkpoint.load(path, checkpoint.MODEL_FORMAT)


def test_predictor_ranks_actions_and_explains(trained):
    predictor = Predictor(trained / "model.pt")
    rng = np.random.default_rng(0)
    frames = [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for h, w in [(90, 120), (30, 40), (200, 100)]]
    predictor.warm_up()
    answer = predictor.predict_frames(frames, top_k=3, explain=True)
    probs = [r["probability"] for r in answer["top_k"]]
    assert len(probs) == 3 and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
    assert {r["label"] for r in answer["top_k"]} <= set(predictor.classes)
    assert len(answer["cams"]) == 4
    png = Image.open(io.BytesIO(base64.b64decode(answer["cams"][0])))
    assert png.size == (64, 64)
    # batching gives the same answers as one clip at a time
    rgb = prepare_frames(frames, predictor.config.frames, predictor.config.image_size)
    two = predictor.predict([Clip(rgb, top_k=1), Clip(rgb, top_k=3, explain=True)])
    assert [r["label"] for r in two[1]["top_k"]] == [r["label"] for r in answer["top_k"]]
    assert len(two[0]["top_k"]) == 1 and "cams" not in two[0] and len(two[1]["cams"]) == 4
    assert two[1]["top_k"][0]["probability"] == pytest.approx(answer["top_k"][0]["probability"], abs=1e-5)


def _stop_after(epochs: int):
    seen = {"n": 0}
    return Callbacks(on_epoch=lambda row: seen.__setitem__("n", seen["n"] + 1),
                     should_stop=lambda: seen["n"] >= epochs)


def test_cancel_then_resume_matches_an_uninterrupted_run(data_dir, tmp_path):
    cfg = small_config("egornn-attention", image_size=32, stages=[{"epochs": 3}, None])
    with pytest.raises(Cancelled):
        train(cfg, data_dir, tmp_path / "a", callbacks=_stop_after(2))
    saved = checkpoint.load(tmp_path / "a" / LAST, checkpoint.TRAINING_FORMAT)
    assert saved["state"]["epoch"] == 2 and len(saved["state"]["history"]) == 2
    assert saved["config"] == cfg.model_dump(mode="json") and len(saved["classes"]) == 6  # self-describing
    with pytest.raises(ValueError, match="another config"):
        train(small_config("egornn-attention", image_size=32, stages=[{"epochs": 4}, None]), data_dir, tmp_path / "a")
    resumed = train(cfg, data_dir, tmp_path / "a")
    straight = train(cfg, data_dir, tmp_path / "b")
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    timing = ("train_time_s", "data_wait_share")
    for a, b in zip(resumed.history, straight.history):
        assert {k: v for k, v in a.items() if k not in timing} == pytest.approx(
            {k: v for k, v in b.items() if k not in timing}, rel=1e-4, abs=1e-6)
        assert a["train_time_s"] > 0 and 0 <= a["data_wait_share"] <= 1


def test_heads_report_their_losses(data_dir, tmp_path):
    cfg = small_config("ms-order", image_size=32, stages=[{"epochs": 1}, {"epochs": 1}])
    result = train(cfg, data_dir, tmp_path)
    stage2 = result.history[-1]
    for head in ("motion_segmentation", "order_prediction"):
        assert stage2[f"train_{head}_loss"] > 0 and stage2[f"val_{head}_loss"] > 0
    assert "train_motion_segmentation_loss" not in result.history[0]  # heads train in stage 2


def test_two_stream_starts_from_trained_streams(data_dir, tmp_path, trained):
    flow = train(small_config("flow", stages=[{"epochs": 1}]), data_dir, tmp_path / "flow")
    cold = small_config("two-stream", stages=[{"epochs": 1}]).start_warnings()
    assert len(cold) == 2 and "starts from the backbone's initial" in cold[0]
    cfg = small_config("two-stream", stages=[{"epochs": 1, "lr": 1e-9, "part_lr": {"flow_layer4": 1e-9}}],
                       model={"rgb_model": "rgb", "flow_model": "flow"})
    paths = {"rgb": trained / "model.pt", "flow": flow.model_path}
    warm = train(cfg, data_dir, tmp_path / "warm", resolve_model=paths.__getitem__)
    assert warm.warnings == []
    assert 0 <= flow.test_acc <= 1 and json.loads((tmp_path / "flow" / "metrics.json").read_text())["test_acc"] == flow.test_acc
    narrower = small_config("two-stream", stages=[{"epochs": 1}], model={"rgb_model": "rgb", "mem_size": 32})
    with pytest.raises(ValueError, match="model.mem_size: rgb was trained with mem_size 64"):
        train(narrower, data_dir, tmp_path / "narrow", resolve_model=paths.__getitem__)
    joint, _ = load_model(warm.model_path)
    rgb, _ = load_model(paths["rgb"])
    # frozen parts of the RGB stream are exactly the trained model's
    assert torch.equal(joint.rgb.backbone.layer1[0].conv1.weight, rgb.backbone.layer1[0].conv1.weight)


def test_egornn_learns_temporal_order(data_dir, tmp_path):
    """Each synthetic action has a twin that is the same motion played backwards, so a
    model blind to frame order is capped at 50% on the held-out user. Ego-RNN is not."""
    cfg = small_config("egornn-attention", frames=6, batch_size=6, image_size=32, model={"mem_size": 128},
                       stages=[{"epochs": 12, "milestones": [9]}, None])
    result = train(cfg, data_dir, tmp_path)
    curve = [round(r["val_acc"], 2) for r in result.history]
    assert result.best_val_acc >= 0.7, curve
    assert sum(curve[-3:]) / 3 >= 0.7, curve  # held after the lr drop, not one lucky epoch


def test_flow_validates_on_the_centre_stack_and_tests_on_five(data_dir):
    """The reference's protocol: the per-epoch validation that picks the best epoch reads one
    centre stack; only the final test averages 5 stacks spread over the video."""
    root = data_dir / "synthetic"
    for preset in ("flow", "two-stream"):
        loaders = make_loaders(small_config(preset), root, class_names(root), Compute())
        assert loaders.val.dataset[0]["flow"].shape[0] == 1 and loaders.test.dataset[0]["flow"].shape[0] == 5
    rgb = make_loaders(small_config("egornn-attention"), root, class_names(root), Compute())
    assert rgb.test is None  # RGB models: the test protocol is the validation's
