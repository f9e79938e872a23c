"""A table of malformed requests: each gets a 4xx problem+json that names what is
wrong, and none a 5xx. The cases run against the live stack."""
import io
import itertools
import os
import select
import socket

import pytest
from PIL import Image

from stack_helpers import tiny_train

PROBLEM = "application/problem+json"


def _png(size=(32, 24)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(buf, format="PNG")
    return buf.getvalue()


PNG = _png()
GIF = io.BytesIO()
Image.new("RGB", (8, 8)).save(GIF, format="GIF")


def frames(*blobs, name="f.png"):
    return [("frames", (f"{i}{name}", b, "image/png")) for i, b in enumerate(blobs)]


def train(**changes):
    body = tiny_train()
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    return {"json": body}


def train_stage(**stage):
    return {"json": {**tiny_train(), "stages": [stage]}}


# (id, method, path, request kwargs, status, what the problem must name)
CASES = [
    # broken bodies
    ("broken-json", "POST", "/train", {"content": b'{"preset": ', "headers": {"content-type": "application/json"}}, 422, "json"),
    ("json-array", "POST", "/train", {"json": [1, 2]}, 422, "body"),
    ("json-string", "POST", "/train", {"json": "egornn"}, 422, "body"),
    ("form-not-json", "POST", "/train", {"data": {"preset": "flow"}}, 422, "body"),
    ("empty-body", "POST", "/train", {"content": b"", "headers": {"content-type": "application/json"}}, 422, "body"),
    # wrong types
    ("frames-string", "POST", "/train", train(frames="many"), 422, "frames"),
    ("frames-float", "POST", "/train", train(frames=4.5), 422, "frames"),
    ("batch-list", "POST", "/train", train(batch_size=[8]), 422, "batch_size"),
    ("users-string", "POST", "/train", train(train_users="S1"), 422, "train_users"),
    ("stages-object", "POST", "/train", {"json": {**tiny_train(), "stages": {"epochs": 1}}}, 422, "stages"),
    ("model-list", "POST", "/train", {"json": {**tiny_train(), "model": []}}, 422, "model"),
    ("attention-string", "POST", "/train", train(model={"attention": "maybe"}), 422, "attention"),
    # out of range
    ("frames-zero", "POST", "/train", train(frames=0), 422, "frames"),
    ("frames-huge", "POST", "/train", train(frames=10_000), 422, "frames"),
    ("image-size-small", "POST", "/train", train(image_size=8), 422, "image_size"),
    ("image-size-huge", "POST", "/train", train(image_size=4096), 422, "image_size"),
    ("batch-zero", "POST", "/train", train(batch_size=0), 422, "batch_size"),
    ("batch-negative", "POST", "/train", train(batch_size=-4), 422, "batch_size"),
    ("seed-negative", "POST", "/train", train(seed=-1), 422, "seed"),
    ("mem-size-zero", "POST", "/train", train(model={"mem_size": 0}), 422, "mem_size"),
    ("lr-zero", "POST", "/train", train_stage(epochs=1, lr=0), 422, "lr"),
    ("lr-negative", "POST", "/train", train_stage(epochs=1, lr=-1e-3), 422, "lr"),
    ("lr-huge", "POST", "/train", train_stage(epochs=1, lr=1e6), 422, "lr"),
    ("epochs-zero", "POST", "/train", train_stage(epochs=0), 422, "epochs"),
    ("epochs-huge", "POST", "/train", train_stage(epochs=10**9), 422, "epochs"),
    ("milestones-decreasing", "POST", "/train", train_stage(epochs=1, milestones=[50, 10]), 422, "milestones"),
    ("milestones-zero", "POST", "/train", train_stage(epochs=1, milestones=[0]), 422, "milestones"),
    ("gamma-zero", "POST", "/train", train_stage(epochs=1, gamma=0), 422, "gamma"),
    ("weight-decay-negative", "POST", "/train", train_stage(epochs=1, weight_decay=-1), 422, "weight_decay"),
    ("momentum-one", "POST", "/train", train_stage(epochs=1, momentum=1.0), 422, "momentum"),
    ("alpha-negative", "POST", "/train", train(model={"heads": [{"kind": "motion_segmentation", "alpha": -1}]},
                                               stages=[{}, {"train": ["heads"]}]), 422, "alpha"),
    ("no-stages", "POST", "/train", {"json": {**tiny_train(), "stages": []}}, 422, "stages"),
    # unknown names
    ("unknown-preset", "POST", "/train", train(preset="resnet-9000"), 422, "preset"),
    ("unknown-field", "POST", "/train", train(learning_rate=1e-3), 422, "learning_rate"),
    ("unknown-model-field", "POST", "/train", train(model={"dropout": 0.5}), 422, "dropout"),
    ("unknown-stage-field", "POST", "/train", train_stage(epochs=1, warmup=3), 422, "warmup"),
    ("unknown-head", "POST", "/train", train(model={"heads": [{"kind": "depth"}]}), 422, "heads"),
    ("unknown-attach", "POST", "/train", train(model={"heads": [{"kind": "motion_segmentation", "attach": "layer9"}]}), 422, "attach"),
    ("unknown-mode", "POST", "/train", train(model={"heads": [{"kind": "motion_segmentation", "mode": "fuzzy"}]}), 422, "mode"),
    ("unknown-part", "POST", "/train", train_stage(epochs=1, train=["everything"]), 422, "train"),
    ("part-of-other-arch", "POST", "/train", train_stage(epochs=1, train=["flow_layer4"]), 422, "train"),
    ("unknown-arch", "POST", "/train", train(model={"arch": "transformer"}), 422, "arch"),
    ("unknown-optimizer", "POST", "/train", train_stage(epochs=1, optimizer="lion"), 422, "optimizer"),
    ("unknown-pretrained", "POST", "/train", train(pretrained="imagenet21k"), 422, "pretrained"),
    ("imagenet-without-file", "POST", "/train", train(pretrained="imagenet"), 422, "pretrained"),
    ("unknown-user", "POST", "/train", train(val_users=["S7"]), 422, "val_users"),
    ("overlapping-users", "POST", "/train", train(val_users=["S1"]), 422, "val_users"),
    ("unknown-dataset", "POST", "/train", train(dataset="gtea99"), 404, "gtea99"),
    ("unknown-start-model", "POST", "/train", {"json": {**tiny_train("two-stream", (1,)), "model": {"rgb_model": "m_nope"}}}, 404, "m_nope"),
    # datasets that try to leave FPAR_DATA_DIR
    ("dataset-dotdot", "POST", "/train", train(dataset="../models"), 422, "dataset"),
    ("dataset-nested-dotdot", "POST", "/train", train(dataset="synthetic/../../x"), 422, "dataset"),
    ("dataset-absolute", "POST", "/train", train(dataset="/etc"), 422, "dataset"),
    ("dataset-home", "POST", "/train", train(dataset="~root"), 422, "dataset"),
    ("dataset-link-out", "POST", "/train", train(dataset="escape"), 422, "dataset"),
    ("user-dotdot", "POST", "/train", train(train_users=[".."]), 422, "train_users"),
    # predict: what is sent
    ("predict-nothing", "POST", "/predict", {"data": {"top_k": "3"}}, 422, "frames"),
    ("predict-empty-image", "POST", "/predict", {"files": frames(b"")}, 422, "frames"),
    ("predict-text", "POST", "/predict", {"files": frames(b"hello, I am not a PNG")}, 422, "frames"),
    ("predict-truncated-png", "POST", "/predict", {"files": frames(PNG[: len(PNG) // 2])}, 422, "frames"),
    ("predict-one-bad-among-good", "POST", "/predict", {"files": frames(PNG, PNG, b"\x00" * 64, PNG)}, 422, "2f.png"),
    ("predict-gif", "POST", "/predict", {"files": frames(GIF.getvalue())}, 422, "GIF"),
    ("predict-fake-video", "POST", "/predict", {"files": {"video": ("v.mp4", b"\x00\x00\x00\x18ftypmp42 not really", "video/mp4")}}, 422, "video"),
    ("predict-empty-video", "POST", "/predict", {"files": {"video": ("v.mp4", b"", "video/mp4")}}, 422, "video"),
    ("predict-frames-and-video", "POST", "/predict", {"files": frames(PNG) + [("video", ("v.mp4", b"xx", "video/mp4"))]}, 422, "video"),
    ("predict-too-many-frames", "POST", "/predict", {"files": frames(*[PNG] * 65)}, 422, "FPAR_MAX_FRAMES"),
    ("predict-top-k-zero", "POST", "/predict", {"files": frames(PNG), "data": {"top_k": "0"}}, 422, "top_k"),
    ("predict-top-k-text", "POST", "/predict", {"files": frames(PNG), "data": {"top_k": "five"}}, 422, "top_k"),
    ("predict-top-k-huge", "POST", "/predict", {"files": frames(PNG), "data": {"top_k": "1000"}}, 422, "top_k"),
    ("predict-wait-negative", "POST", "/predict", {"files": frames(PNG), "data": {"wait": "-1"}}, 422, "wait"),
    ("predict-wait-text", "POST", "/predict", {"files": frames(PNG), "data": {"wait": "soon"}}, 422, "wait"),
    ("predict-wait-too-long", "POST", "/predict", {"files": frames(PNG), "data": {"wait": "3600"}}, 422, "wait"),
    ("predict-explain-text", "POST", "/predict", {"files": frames(PNG), "data": {"explain": "perhaps"}}, 422, "explain"),
    ("predict-unknown-model", "POST", "/predict", {"files": frames(PNG), "data": {"model": "m_missing"}}, 404, "m_missing"),
    ("predict-bad-idempotency-key", "POST", "/predict", {"files": frames(PNG), "headers": {"Idempotency-Key": "x" * 300}}, 422, "Idempotency-Key"),
    # ids and queries
    ("job-unknown", "GET", "/jobs/tr_0000000000000000", {}, 404, "tr_0000000000000000"),
    ("job-garbage-id", "GET", "/jobs/%00%ff..", {}, 404, "not found"),
    ("cancel-unknown", "POST", "/jobs/nope/cancel", {}, 404, "nope"),
    ("model-unknown", "GET", "/models/m_nope", {}, 404, "m_nope"),
    ("list-bad-kind", "GET", "/jobs", {"params": {"kind": "paint"}}, 422, "kind"),
    ("list-bad-status", "GET", "/jobs", {"params": {"status": "sleeping"}}, 422, "status"),
    ("list-limit-zero", "GET", "/jobs", {"params": {"limit": "0"}}, 422, "limit"),
    ("list-limit-text", "GET", "/jobs", {"params": {"limit": "all"}}, 422, "limit"),
    ("list-bad-cursor", "GET", "/jobs", {"params": {"cursor": "yesterday"}}, 422, "cursor"),
    ("list-nan-cursor", "GET", "/jobs", {"params": {"cursor": "nan"}}, 422, "cursor"),
    ("experiments-inf-cursor", "GET", "/experiments", {"params": {"cursor": "-inf"}}, 422, "cursor"),
    ("wrong-method", "DELETE", "/jobs", {}, 405, "Method Not Allowed"),
    ("no-route", "GET", "/predictions", {}, 404, "Not Found"),
]


@pytest.fixture(scope="module", autouse=True)
def link_out_of_data_dir(stack):
    link = stack.data_dir / "escape"
    if not link.exists():
        os.symlink("/tmp", link)
    yield


def test_the_battery_is_large():
    assert len(CASES) >= 50


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_malformed_request_gets_a_clear_4xx(client, trained, case):
    _, method, path, kwargs, status, names = case
    r = client.request(method, path, **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["status"] == status and body["title"] and body["type"].startswith("https://")
    assert names.lower() in (body["detail"] + str(body.get("errors", ""))).lower(), body


def read_reply(sock: socket.socket) -> str:
    """A whole HTTP reply: its head and body may come in separate segments."""
    data = b""
    while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace")


def _length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def test_upload_over_the_limit_is_413_while_streaming(client, stack, trained):
    big = b"\x00" * (3 << 20)  # FPAR_MAX_UPLOAD_MB is 2 in the test stack
    declared = client.post("/predict", files=frames(big))
    assert declared.status_code == 413 and declared.headers["content-type"] == PROBLEM

    # An endless chunked upload (no Content-Length): only a limit enforced on the stream
    # itself can answer it. Send until the server replies; give up after 64 MiB.
    with socket.create_connection(("127.0.0.1", stack.port), timeout=30) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                     b"Content-Type: multipart/form-data; boundary=xyz\r\n\r\n")
        head = (b'--xyz\r\nContent-Disposition: form-data; name="frames"; filename="a.png"\r\n'
                b"Content-Type: image/png\r\n\r\n")
        sent, chunk = 0, b"\x00" * (1 << 16)
        for piece in itertools.chain([head], itertools.repeat(chunk, 1024)):
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
        reply = read_reply(sock)
    assert reply.startswith("HTTP/1.1 413"), reply[:200]
    assert "FPAR_MAX_UPLOAD_MB" in reply
    assert sent < 16 << 20, f"the server read {sent} bytes before refusing"


def test_one_problem_type_per_kind_and_the_http_servers_own_limit(client, stack, trained):
    """413 is `too-large` whether the middleware or the route refuses the body; a request
    line over uvicorn's parser limit (64 KiB) never reaches the application: uvicorn answers
    it with a plain-text 400, as docs/reliability.md says."""
    declared = client.post("/predict", files=frames(b"\x00" * (3 << 20)))
    assert declared.json()["type"].endswith("/too-large")
    near = client.get("/jobs/" + "a" * 60_000)
    assert near.status_code == 404 and near.headers["content-type"] == PROBLEM
    with socket.create_connection(("127.0.0.1", stack.port), timeout=30) as sock:
        sock.sendall(b"GET /jobs/" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = sock.recv(65536).decode(errors="replace")
    assert reply.startswith("HTTP/1.1 400") and "text/plain" in reply, reply[:200]
