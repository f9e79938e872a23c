"""The whole loop over HTTP: train a model, see it listed, predict with it."""
import base64
import io

import av
import numpy as np
from PIL import Image

from stack_helpers import frames_of, tiny_train, wait_for

ROW = {"stage", "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr"}


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and {q for w in ready["workers"] for q in w["queues"]} == {"train", "predict", "ingest"}


def test_presets_are_the_papers(client):
    presets = {p["name"]: p for p in client.get("/presets").json()}
    assert len(presets) == 13 and {"convlstm-dynamic", "sparnet"} <= set(presets)
    assert all("Source: " in p["description"] and p["source"] in p["description"] for p in presets.values())
    assert presets["two-stream"]["config"]["stages"][0]["part_lr"] == {"flow_layer4": 1e-4}
    idt = presets["idt-net"]["config"]["stages"][1]  # seed 004, table 5
    assert (idt["epochs"], idt["lr"], idt["milestones"], idt["part_lr"]) == (
        100, 2e-4, [45, 95], {"heads": 5e-5, "layer4": 2e-4, "cam": 2e-4})
    assert len(presets["feedback"]["config"]["stages"]) == 3 and "table 5" in presets["idt-net"]["source"]


def test_training_reports_progress_metrics_and_registers_the_model(client, trained):
    assert [(r["stage"], r["epoch"]) for r in trained["metrics"]] == [(1, 1), (2, 1)]
    assert all(ROW <= set(r) and 0 <= r["val_acc"] <= 1 for r in trained["metrics"])
    assert trained["progress"]["fraction"] == 1 and trained["progress"]["stage"] == 2
    assert trained["started_at"] >= trained["created_at"] and trained["finished_at"] >= trained["started_at"]
    result = trained["result"]
    assert 0 <= result["best_val_acc"] <= 1
    model = client.get(f"/models/{result['model']}").json()
    assert model["job_id"] == trained["id"] and model["arch"] == "egornn" and model["preset"] == "egornn-attention"
    assert model["best_val_acc"] == result["best_val_acc"] and len(model["classes"]) == 6
    assert result["model"] in [m["id"] for m in client.get("/models").json()]


def test_predict_waits_for_the_answer(client, stack, trained):
    model = client.get(f"/models/{trained['result']['model']}").json()
    r = client.post("/predict", files=frames_of(stack), data={"wait": "30", "top_k": "3", "model": model["id"]})
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["status"] == "succeeded" and job["kind"] == "predict"
    ranked = job["result"]["top_k"]
    assert len(ranked) == 3 and {x["label"] for x in ranked} <= set(model["classes"])
    assert [x["probability"] for x in ranked] == sorted((x["probability"] for x in ranked), reverse=True)
    assert all(model["classes"][x["index"]] == x["label"] for x in ranked)


def test_predict_without_wait_is_queued_then_done(client, stack, trained):
    r = client.post("/predict", files=frames_of(stack, count=2))  # newest model, default top_k
    assert r.status_code == 202 and r.headers["location"] == f"/jobs/{r.json()['id']}"
    assert r.json()["job_id"] == r.json()["id"] and r.json()["status"] == "queued"  # SPEC section 2
    job = wait_for(client, r.json()["id"], timeout_s=60)
    assert job["status"] == "succeeded" and len(job["result"]["top_k"]) == 5


def test_predict_accepts_any_frame_size_and_count(client, trained):
    rng = np.random.default_rng(0)
    files = []
    for i, (h, w) in enumerate([(480, 640), (50, 30), (64, 64)] * 7):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, format="JPEG")
        files.append(("frames", (f"f{i}.jpg", buf.getvalue(), "image/jpeg")))
    r = client.post("/predict", files=files, data={"wait": "30"})
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text


def _video_bytes(frames: list[np.ndarray]) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def test_predict_from_a_video(client, stack, trained):
    images = [np.asarray(Image.open(io.BytesIO(f[1][1])).convert("RGB")) for f in frames_of(stack)]
    video = _video_bytes(images)
    r = client.post("/predict", files={"video": ("clip.mp4", video, "video/mp4")}, data={"wait": "30"})
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    from_frames = client.post("/predict", files=frames_of(stack), data={"wait": "30"}).json()
    assert r.json()["result"]["top_k"][0]["label"] == from_frames["result"]["top_k"][0]["label"]


def test_explain_returns_a_cam_overlay_per_frame(client, stack, trained):
    r = client.post("/predict", files=frames_of(stack), data={"wait": "30", "explain": "true"})
    assert r.status_code == 200, r.text
    cams = r.json()["result"]["cams"]
    assert len(cams) == 4  # the model's frame count
    images = [Image.open(io.BytesIO(base64.b64decode(c))) for c in cams]
    assert all(im.format == "PNG" and im.size == (64, 64) for im in images)


def test_train_answers_the_published_contract(client):
    r = client.post("/train", json=tiny_train(epochs=(1, 1)))
    job = r.json()
    assert r.status_code == 202 and job["job_id"] == job["id"] and job["status"] == "queued"  # SPEC section 2
    assert r.headers["location"] == f"/jobs/{job['id']}"
    assert wait_for(client, job["id"], timeout_s=180)["status"] == "succeeded"
