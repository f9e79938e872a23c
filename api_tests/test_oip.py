"""The Open Inference Protocol v2 with a real client (tritonclient[http]): health, model
metadata with the labels, inference with JSON and with binary tensors answering the same
probabilities as /predict for the same frames, and bad tensors refused with the field."""
import io
from urllib.parse import urlparse

import numpy as np
import pytest
import tritonclient.http as triton
from PIL import Image
from tritonclient.utils import InferenceServerException

from stack_helpers import frames_of


@pytest.fixture(scope="module")
def oip(stack):
    c = triton.InferenceServerClient(url=urlparse(stack.url).netloc, network_timeout=120, connection_timeout=120)
    yield c
    c.close()


def decoded(stack) -> np.ndarray:
    return np.stack([np.asarray(Image.open(io.BytesIO(f[1][1])).convert("RGB")) for f in frames_of(stack)])


def test_health_metadata_and_readiness(oip, client, trained):
    model_id = trained["result"]["model"]
    assert oip.is_server_live() and oip.is_server_ready() and oip.is_model_ready(model_id)
    assert "binary_tensor_data" in oip.get_server_metadata()["extensions"]
    meta = oip.get_model_metadata(model_id)
    assert meta["inputs"] == [{"name": "frames", "datatype": "UINT8", "shape": [-1, -1, -1, 3]}]
    classes = client.get(f"/models/{model_id}").json()["classes"]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [1, len(classes)]}]
    assert meta["parameters"]["labels"] == classes
    assert not oip.is_model_ready("m_nope")


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_answers_what_predict_answers(oip, client, stack, trained, binary):
    model_id = trained["result"]["model"]
    classes = client.get(f"/models/{model_id}").json()["classes"]
    frames = decoded(stack)
    tensor = triton.InferInput("frames", list(frames.shape), "UINT8")
    tensor.set_data_from_numpy(frames, binary_data=binary)
    result = oip.infer(model_id, [tensor], request_id="r1",
                       outputs=[triton.InferRequestedOutput("probabilities", binary_data=binary)])
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (1, len(classes)) and probabilities.dtype == np.float32
    assert result.get_response()["id"] == "r1"

    r = client.post("/predict", files=frames_of(stack),
                    data={"wait": "60", "model": model_id, "top_k": str(probabilities.shape[1])})
    for row in r.json()["result"]["top_k"]:
        assert probabilities[0, row["index"]] == pytest.approx(row["probability"], abs=1e-5)
    assert probabilities.sum() == pytest.approx(1, abs=1e-4)


def test_no_outputs_named_means_every_output_in_binary(oip, client, stack, trained):
    frames = decoded(stack)[:5, :40, :50]  # any count and size
    tensor = triton.InferInput("frames", list(frames.shape), "UINT8")
    tensor.set_data_from_numpy(frames)
    result = oip.infer(trained["result"]["model"], [tensor])
    classes = client.get(f"/models/{trained['result']['model']}").json()["classes"]
    assert result.as_numpy("probabilities").shape == (1, len(classes))


@pytest.mark.parametrize("name, datatype, shape, says", [
    ("frames", "FP32", [4, 32, 32, 3], "inputs.frames"),
    ("frames", "UINT8", [4, 32, 32, 1], "UINT8 [T, H, W, 3]"),
    ("pixels", "UINT8", [4, 32, 32, 3], "unknown input ['pixels']"),
])
def test_bad_tensors_are_refused_naming_the_input(oip, trained, name, datatype, shape, says):
    tensor = triton.InferInput(name, shape, datatype)
    tensor.set_data_from_numpy(np.zeros(shape, np.float32 if datatype == "FP32" else np.uint8))
    with pytest.raises(InferenceServerException) as e:
        oip.infer(trained["result"]["model"], [tensor])
    assert e.value.status() == "422" and says in e.value.message(), e.value.message()


def test_raw_protocol_errors_over_http(client, trained):
    model_id = trained["result"]["model"]
    r = client.post(f"/v2/models/{model_id}/infer", content=b'{"inputs": [{"name": "frames", "datatype": "UINT8", '
                    b'"shape": [1, 2, 2, 3], "data": [1, 2, 3]}]}')
    assert r.status_code == 422 and "inputs.0.data" in r.json()["error"], r.text
    r = client.post(f"/v2/models/{model_id}/infer", content=b"{nope", headers={"Inference-Header-Content-Length": "3"})
    assert r.status_code == 400 and r.json()["error"], r.text
    for body, field in (
            (b'{"inputs": [{"name": "frames", "datatype": "UINT8", "shape": [1, 2, 2, 3], "data": [0], '
             b'"parameters": [1]}]}', "inputs.0.parameters"),
            (b'{"inputs": [{"name": "frames", "datatype": "UINT8", "shape": [4294967296, 4294967296], '
             b'"data": []}]}', "inputs.0.data"),  # 2**64 elements: np.prod would wrap to 0
            (b'{"inputs": [{"name": "frames", "datatype": "UINT8", "shape": [1], "parameters": '
             b'{"binary_data_size": "1"}}]}', "inputs.0.parameters.binary_data_size"),
            (b'{"inputs": [{"name": "frames", "datatype": "UINT8", "shape": [1], "data": [0]}], '
             b'"parameters": "binary"}', "parameters"),
            (b'{"inputs": [{"name": "frames", "datatype": "UINT8", "shape": [1], "data": [0]}], '
             b'"outputs": [{"name": "probabilities", "parameters": 7}]}', "outputs.0.parameters")):
        r = client.post(f"/v2/models/{model_id}/infer", content=body)
        assert r.status_code == 422 and field in r.json()["error"], (field, r.text)
    assert client.post("/v2/models/m_nope/infer", content=b"{}").status_code == 404
