"""The compiled runtimes serve the same answers as eager PyTorch, or do not serve: a
graph that disagrees with PyTorch on the sample clips is refused."""
import os

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from fpar_models import checkpoint
from fpar_models.models import build_model
from fpar_models.serving.predictor import Clip, Predictor, random_clips
from fpar_models.serving.runtimes import graph_path

from model_helpers import small_config

CLASSES = list("abcdef")


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """Randomly initialised models of the three architectures, saved as the trainer does."""
    files = {}
    for preset in ("egornn-attention", "flow", "two-stream"):
        cfg = small_config(preset, image_size=48)
        path = tmp_path_factory.mktemp(preset) / "model.pt"
        checkpoint.save_atomic(checkpoint.model_file(build_model(cfg, len(CLASSES)), cfg, CLASSES), path)
        files[preset] = path
    return files


def _clips(cfg, n: int) -> list[Clip]:
    inputs = random_clips(cfg, n)
    return [Clip(inputs["frames"][i] if "frames" in inputs else None, inputs["flow"][i] if "flow" in inputs else None,
                 top_k=3, explain=cfg.uses_rgb) for i in range(n)]


@pytest.mark.parametrize("preset", ["egornn-attention", "flow", "two-stream"])
@pytest.mark.parametrize("runtime", ["openvino", "onnxruntime"])
def test_a_compiled_runtime_answers_as_pytorch_does(model_files, preset, runtime):
    eager = Predictor(model_files[preset])
    compiled = Predictor(model_files[preset], inference=runtime)
    assert compiled.choice.backend == runtime and compiled.choice.verified, compiled.choice
    assert compiled.choice.max_abs_diff < 1e-3
    clips = _clips(eager.config, 3)  # a batch of 3: the graph's batch size is free
    for want, got in zip(eager.predict(clips), compiled.predict(clips)):
        assert [r["label"] for r in got["top_k"]] == [r["label"] for r in want["top_k"]]
        assert [r["probability"] for r in got["top_k"]] == pytest.approx([r["probability"] for r in want["top_k"]],
                                                                          abs=1e-3)
        assert len(got.get("cams", [])) == len(want.get("cams", []))  # the CAM is an output of the graph


def test_the_graph_is_exported_once_and_reused(model_files):
    first = Predictor(model_files["egornn-attention"], inference="onnxruntime")
    graph = graph_path(model_files["egornn-attention"].parent / "compiled", first.config)
    made = graph.stat().st_mtime_ns
    again = Predictor(model_files["egornn-attention"], inference="onnxruntime")
    assert again.choice.verified and graph.stat().st_mtime_ns == made


def test_a_perturbed_graph_is_refused_and_pytorch_serves(model_files, tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(model_files["egornn-attention"].read_bytes())
    honest = Predictor(path, inference="openvino")
    graph = graph_path(path.parent / "compiled", honest.config)
    tampered = onnx.load(str(graph))
    for tensor in tampered.graph.initializer:  # nudge every weight matrix of the graph by 2%
        weights = numpy_helper.to_array(tensor)
        if weights.dtype == np.float32 and weights.size > 1000:
            tensor.CopyFrom(numpy_helper.from_array(weights * np.float32(1.02), tensor.name))
    onnx.save(tampered, str(graph))
    # OpenVINO's cache takes a blob as still valid while the file keeps its path, size and
    # mtime in whole seconds: the tampered graph (same size) written within the second of
    # the honest one would be served from the honest one's blob. Now it is a later file.
    stat = graph.stat()
    os.utime(graph, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    for runtime in ("openvino", "onnxruntime"):
        served = Predictor(path, inference=runtime)
        assert served.choice.backend == "torch" and served.choice.verified is False, served.choice
        assert f"{runtime} refused" in served.choice.reason
    answer = served.predict(_clips(served.config, 1))[0]  # PyTorch still answers
    assert len(answer["top_k"]) == 3


def test_auto_on_the_cpu_takes_the_fastest_installed_runtime(model_files):
    assert Predictor(model_files["flow"], inference="auto").choice.backend == "openvino"
    assert Predictor(model_files["flow"]).choice.backend == "torch"  # the default of the library: eager
