"""The predict worker serves models with the fastest runtime that verifies against
PyTorch (FPAR_INFERENCE=auto: OpenVINO on this CPU), says so in GET /models/{id} and
/metrics, answers as PyTorch does, and falls back to PyTorch when a graph disagrees."""
import io
import time

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from PIL import Image

from fpar_models.inference import Predictor

from stack_helpers import frames_of


def _served(client, model_id: str, backend: str, timeout_s: float = 30) -> dict:
    """The model's serving record by `backend`, once a predict worker's heartbeat carries it
    (a killed worker's heartbeat lingers until it expires: look for the one wanted)."""
    deadline = time.monotonic() + timeout_s
    while True:
        serving = [s for s in client.get(f"/models/{model_id}").json()["inference"] if s["backend"] == backend]
        if serving:
            return serving[0]
        assert time.monotonic() < deadline, f"no predict worker reported the model served by {backend}"
        time.sleep(0.5)


def test_a_compiled_runtime_serves_the_same_answers_as_pytorch(client, stack, trained):
    model_id = trained["result"]["model"]
    r = client.post("/predict", files=frames_of(stack), data={"wait": "60", "top_k": "3", "model": model_id})
    assert r.status_code == 200, r.text
    served = _served(client, model_id, "openvino")
    assert served["verified"] and served["max_abs_diff"] < 1e-3, served
    assert 'backend="openvino"' in client.get("/metrics").text

    eager = Predictor(stack.model_dir / model_id / "model.pt")  # PyTorch, in this process
    want = eager.predict_frames([Image.open(io.BytesIO(f[1][1])) for f in frames_of(stack)], top_k=3)
    got = r.json()["result"]["top_k"]
    assert [x["label"] for x in got] == [x["label"] for x in want["top_k"]]
    assert [x["probability"] for x in got] == pytest.approx([x["probability"] for x in want["top_k"]], abs=1e-3)


def test_a_graph_that_disagrees_is_refused_and_pytorch_serves(client, stack, trained):
    model_id = trained["result"]["model"]
    graphs = list((stack.model_dir / model_id / "compiled").glob("serving-*.onnx"))
    assert graphs, "the graph is cached beside the checkpoint"
    tampered = onnx.load(str(graphs[0]))
    for tensor in tampered.graph.initializer:
        weights = numpy_helper.to_array(tensor)
        if weights.dtype == np.float32 and weights.size > 1000:
            tensor.CopyFrom(numpy_helper.from_array(weights * np.float32(1.02), tensor.name))
    onnx.save(tampered, str(graphs[0]))
    try:
        stack.kill("worker-predict")  # the supervisor restarts it; it loads the model again
        stack.wait_ready(90)
        r = client.post("/predict", files=frames_of(stack), data={"wait": "60", "model": model_id})
        assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
        served = _served(client, model_id, "torch")
        assert served["verified"] is False, served
        assert "openvino refused" in served["reason"]
    finally:
        graphs[0].unlink()  # the next load exports an honest graph again
        stack.kill("worker-predict")
        stack.wait_ready(90)

