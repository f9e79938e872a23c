"""Reduced precision is opt-in and measured: int8 (NNCF) serves with its cost on labelled
clips reported; bf16 serves only where the hardware computes it (OpenVINO, or PyTorch's
autocast where the worker runs PyTorch); a mode that cannot be built or
measured is refused with the reason, and fp32 serves."""
import os
import shutil
import signal

import numpy as np
import pytest
import torch

from fpar_models import checkpoint
from fpar_models.models import build_model
from fpar_models.serving.precision import bf16_units, torch_bf16_units
from fpar_models.serving.predictor import Clip, Predictor, random_clips

from model_helpers import small_config

CLASSES = list("abcdef")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    cfg = small_config("egornn-attention", image_size=64)
    path = tmp_path_factory.mktemp("precision") / "model.pt"
    checkpoint.save_atomic(checkpoint.model_file(build_model(cfg, len(CLASSES)), cfg, CLASSES), path)
    clips = random_clips(cfg, 12)
    calibration = random_clips(cfg, 4)
    labels = np.arange(12) % len(CLASSES)
    return path, cfg, lambda: (clips, labels), lambda: calibration


def test_int8_serves_with_its_cost_measured_once(model):
    path, cfg, evaluation, calibration = model
    p = Predictor(path, inference="auto", precision="int8", evaluation=evaluation, calibration=calibration)
    assert (p.choice.backend, p.choice.precision, p.choice.verified) == ("openvino", "int8", False), p.choice
    cost = p.choice.cost
    assert cost["clips"] == 12 and 0 <= cost["top1_agreement"] <= 1 and 0 <= cost["accuracy"] <= 1
    clips, labels = evaluation()
    eager = Predictor(path).engine.run(clips)[0]
    assert cost["accuracy_fp32"] == pytest.approx((eager.argmax(1) == labels).mean())
    assert 0 < cost["max_abs_diff"] < 0.5  # quantised: close, not exact
    int8 = list((path.parent / "compiled").glob("*-int8.xml"))
    assert int8 and b"i8" in int8[0].read_bytes(), "the saved graph holds int8 weights"

    made = int8[0].stat().st_mtime_ns
    # built and measured once: a later load decodes no clips, even when the dataset has gone
    again = Predictor(path, inference="auto", precision="int8", evaluation=None, calibration=None)
    assert again.choice.cost == cost and int8[0].stat().st_mtime_ns == made
    answer = again.predict([Clip(clips["frames"][0], top_k=3, explain=True)])[0]
    assert len(answer["top_k"]) == 3 and len(answer["cams"]) == cfg.frames


def test_the_int8_graph_runs_in_a_process_of_its_own_started_again_if_it_dies(model):
    path, cfg, evaluation, calibration = model
    p = Predictor(path, inference="auto", precision="int8", evaluation=evaluation, calibration=calibration)
    child = p.engine.process
    assert child.is_alive() and child.pid != os.getpid()
    frames = evaluation()[0]["frames"][:2]
    want = p.engine.run({"frames": frames})[0]
    os.kill(child.pid, signal.SIGKILL)  # what a crash of the int8 kernels would do
    child.join(10)
    got = p.engine.run({"frames": frames})[0]  # a new child answers
    assert p.engine.process.pid != child.pid and np.allclose(got, want)


def test_bf16_serves_only_on_a_cpu_with_bf16_units(model):
    path, _, evaluation, _ = model
    p = Predictor(path, inference="auto", precision="bf16", evaluation=evaluation)
    if bf16_units():
        assert p.choice.precision == "bf16" and p.choice.cost["clips"] == 12, p.choice
    else:
        assert (p.choice.backend, p.choice.precision, p.choice.verified) == ("openvino", "fp32", True), p.choice
        assert "bf16 refused: this CPU has no bf16 units" in p.choice.reason


def test_bf16_on_pytorch_is_autocast_with_its_cost_measured(model, tmp_path):
    """Where the worker runs PyTorch (CUDA; here FPAR_INFERENCE=torch) bf16 is its autocast."""
    path, cfg, evaluation, _ = model
    p = Predictor(path, inference="torch", precision="bf16", evaluation=evaluation)
    if not torch_bf16_units(torch.device("cpu")):
        assert p.choice.precision == "fp32" and "this CPU has no bf16 units" in p.choice.reason
        return
    assert (p.choice.backend, p.choice.precision, p.choice.verified) == ("torch", "bf16", False), p.choice
    assert p.engine.compute.amp_dtype == torch.bfloat16 and p.choice.cost["clips"] == 12
    assert 0 < p.choice.cost["max_abs_diff"] < 0.5  # bf16: close to fp32, not equal
    answer = p.predict([Clip(evaluation()[0]["frames"][0], top_k=3, explain=True)])[0]
    assert len(answer["top_k"]) == 3 and len(answer["cams"]) == cfg.frames
    fp32 = Predictor(path, inference="torch")  # the default is untouched
    assert fp32.choice.precision == "fp32" and fp32.engine.compute.amp_dtype is None


@pytest.mark.parametrize("inference, evaluation, why", [
    ("auto", None, "the validation clips are not at hand"),
    ("auto", "gone", "the validation clips are not at hand"),  # the dataset's folder is not there
    ("torch", "given", "runs FPAR_INFERENCE=torch"),
    ("onnxruntime", "given", "runs FPAR_INFERENCE=onnxruntime"),
])
def test_a_reduced_mode_that_cannot_be_measured_or_built_is_refused(model, tmp_path, inference, evaluation, why):
    path, _, clips, calibration = model
    fresh = tmp_path / "model.pt"  # never measured: no cost kept beside it
    shutil.copy(path, fresh)
    given = {None: None, "gone": lambda: None, "given": clips}[evaluation]
    p = Predictor(fresh, inference=inference, precision="int8", evaluation=given, calibration=calibration)
    assert p.choice.precision == "fp32" and p.choice.cost is None
    assert why in p.choice.reason, p.choice.reason
