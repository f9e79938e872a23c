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

from fpar_models.serving import Predictor

from stack_helpers import frames_of, wait_for


def _served(client, model_id: str, backend: str | None = None, precision: str | None = None,
            timeout_s: float = 60) -> dict:
    """The model's serving record by `backend` (or in `precision`), once a predict worker's
    heartbeat carries it (a killed worker's heartbeat lingers until it expires: look for the
    one wanted)."""
    wanted = {k: v for k, v in (("backend", backend), ("precision", precision)) if v}
    deadline = time.monotonic() + timeout_s
    while True:
        serving = [s for s in client.get(f"/models/{model_id}").json()["inference"]
                   if all(s[k] == v for k, v in wanted.items())]
        if serving:
            return serving[0]
        assert time.monotonic() < deadline, f"no predict worker reported the model served with {wanted}"
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



@pytest.mark.parametrize("fmt", ["onnx", "openvino", "torchscript"])
def test_the_exported_artefact_answers_as_predict_does(client, stack, trained, fmt, tmp_path):
    import json
    import zipfile

    from fpar_models.data.transforms import prepare_frames

    model_id = trained["result"]["model"]
    r = client.get(f"/models/{model_id}/export", params={"format": fmt}, timeout=180)
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip", r.text[:300]
    archive = zipfile.ZipFile(io.BytesIO(r.content))
    archive.extractall(tmp_path)
    meta = json.loads((tmp_path / "metadata.json").read_text())
    assert meta["classes"] == client.get(f"/models/{model_id}").json()["classes"]
    assert (tmp_path / "labels.txt").read_text().split() == meta["classes"]
    shape = meta["inputs"]["frames"]["shape"]

    files = frames_of(stack)
    frames = prepare_frames([Image.open(io.BytesIO(f[1][1])) for f in files], shape[1], shape[2])[None]
    if fmt == "onnx":
        import onnxruntime as ort

        assert 'platform: "onnxruntime_onnx"' in (tmp_path / "config.pbtxt").read_text()
        probs = ort.InferenceSession(str(tmp_path / "model.onnx")).run(None, {"frames": frames})[0][0]
    elif fmt == "openvino":
        import openvino as ov

        compiled = ov.Core().compile_model(str(tmp_path / "model.xml"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        probs = np.array(compiled({"frames": frames})[compiled.outputs[0]])[0]
    else:
        import torch

        probs = torch.jit.load(str(tmp_path / "model.pt"))(torch.from_numpy(frames))[0][0].numpy()
    answer = client.post("/predict", files=files, data={"wait": "60", "top_k": "3", "model": model_id}).json()
    for row in answer["result"]["top_k"]:
        assert probs[row["index"]] == pytest.approx(row["probability"], abs=1e-3)
    assert [meta["classes"][i] for i in np.argsort(-probs)[:3]] == [x["label"] for x in answer["result"]["top_k"]]


def test_int8_is_opt_in_and_its_cost_is_reported(client, stack, trained):
    model_id = trained["result"]["model"]
    assert client.get(f"/models/{model_id}").json()["inference_precision"] == "fp32"
    for body, field in (({"inference_precision": "fp8"}, "inference_precision"), ({"precision": "int8"}, "precision")):
        r = client.patch(f"/models/{model_id}", json=body)
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", r.text
        assert any(field in e["loc"] for e in r.json()["errors"]), r.json()
    assert client.patch("/models/m_nope", json={"inference_precision": "int8"}).status_code == 404

    try:
        r = client.patch(f"/models/{model_id}", json={"inference_precision": "int8"})
        assert r.status_code == 200 and r.json()["inference_precision"] == "int8", r.text
        # the first prediction runs for seconds (the worker quantises): cancelled while running,
        # it ends cancelled at the end of its batch, with no answer
        job = client.post("/predict", files=frames_of(stack), data={"wait": "0", "model": model_id}).json()
        while (status := client.get(f"/jobs/{job['id']}").json()["status"]) == "queued":
            time.sleep(0.05)
        assert status == "running", status
        assert client.post(f"/jobs/{job['id']}/cancel").status_code == 202
        ended = wait_for(client, job["id"], timeout_s=120)
        assert ended["status"] == "cancelled" and ended["result"] is None and ended["finished_at"], ended
        r = client.post("/predict", files=frames_of(stack), data={"wait": "60", "top_k": "3", "model": model_id})
        assert r.status_code == 200 and len(r.json()["result"]["top_k"]) == 3, r.text
        served = _served(client, model_id, precision="int8")
        assert served["backend"] == "openvino" and served["verified"] is False, served
        cost = served["cost"]
        assert cost["clips"] >= 1 and set(cost) >= {"top1_agreement", "accuracy", "accuracy_fp32"}, cost
        assert cost["accuracy_fp32"] == pytest.approx(trained["result"]["best_val_acc"], abs=1e-6), \
            "the fp32 accuracy is the model's validation accuracy (all the clips, as validation sees them)"
    finally:
        assert client.patch(f"/models/{model_id}", json={"inference_precision": "fp32"}).status_code == 200
    r = client.post("/predict", files=frames_of(stack), data={"wait": "60", "model": model_id})
    assert r.status_code == 200, r.text
    served = _served(client, model_id, precision="fp32")
    assert served["backend"] == "openvino" and served["verified"], served
