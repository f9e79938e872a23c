"""An ingest in-process, as a worker runs it: recordings and a CSV planned into video
folders, each written in the GTEA61 layout, published whole with its manifest; what it
writes is what every preset that needs flow or motion maps loads."""
import csv
import json

import pytest

from fpar_models.compute import Compute
from fpar_models.data.gtea61 import class_names
from fpar_models.data.loaders import make_loaders
from fpar_models.data.recordings import write_recording
from fpar_models.data.report import validate
from fpar_models.ingest.labels import LabelError
from fpar_models.ingest.options import IngestJob, IngestRequest
from fpar_models.ingest.plan import plan
from fpar_models.ingest.run import MANIFEST, Workspace
from fpar_models.ingest.video import VideoError
from fpar_models.models import motion_map_grid
from fpar_models.presets import PRESETS, resolve_config


def _source(data, rows_extra=()):
    source = data / "incoming"
    source.mkdir(parents=True)
    rows = []
    for user in ("S1", "S2"):
        rec = write_recording(source / f"{user}.mp4", [(user, "lift_cup", 0), (user, "open_box", 0)], fps=12)
        rows += [[rec.path.name, c.action, f"{c.start_s:.3f}", f"{c.end_s:.3f}", user] for c in rec.clips]
    with open(source / "labels.csv", "w", newline="") as f:
        csv.writer(f).writerows([["video", "label", "start", "end", "user"], *rows, *rows_extra])
    return source


def _job(data, source, **options) -> IngestJob:
    request = IngestRequest(name="mini", source="incoming", labels="labels.csv", shorter_side=37, **options)
    return IngestJob(request=request, source_dir="incoming", items=plan(request, source))


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    data = tmp_path_factory.mktemp("ingest")
    job = _job(data, _source(data))
    work = Workspace(data, "in_test", job)
    for item in job.items:
        work.ingest(item, worker="w1")
    return data, job, work.publish()


def test_the_plan_numbers_each_user_s_segments_and_the_dataset_appears_whole(ingested):
    data, job, result = ingested
    assert [i.path for i in job.items] == ["S1/lift_cup/1", "S1/open_box/1", "S2/lift_cup/1", "S2/open_box/1"]
    assert result["videos"] == 4 and result["skipped"] == 0 and result["workers"] == {"w1": 4}
    assert not (data / ".ingest" / "in_test" / "mini").exists() and (data / "mini" / MANIFEST).is_file()
    assert [f for f in validate(data / "mini") if f.severity == "error"] == []
    # each labelled segment comes back as exactly its clip's frames (the recordings' truth)
    truth = [write_recording(data / "truth.mp4", [(u, a, 0)]).clips[0].frames
             for u in ("S1", "S2") for a in ("lift_cup", "open_box")]
    manifest = json.loads((data / "mini" / MANIFEST).read_text())
    assert [v["frames"] for v in manifest["videos"]] == truth


def test_every_preset_that_needs_flow_or_maps_loads_an_ingested_dataset(ingested):
    data, _, _ = ingested
    root = data / "mini"
    classes = class_names(root)
    assert classes == ["lift_cup", "open_box"]
    needing = [name for name, p in PRESETS.items() if p.config.uses_flow or motion_map_grid(p.config)]
    assert {"flow", "two-stream", "ms-classification", "ms-regression", "idt-net", "sparnet"} <= set(needing)
    for name in needing:
        cfg = resolve_config({"preset": name, "dataset": "mini", "pretrained": "none", "image_size": 32, "frames": 4,
                              "batch_size": 2, "train_users": ["S1"], "val_users": ["S2"], "num_workers": 0})
        loaders = make_loaders(cfg, root, classes, Compute())
        batch = next(iter(loaders.train))
        if cfg.uses_flow:
            assert batch["flow"].shape[-3:] == (2 * cfg.model.stack_size, 32, 32), name
        if motion_map_grid(cfg):
            assert batch["maps"].shape[1] == 4 and float(batch["maps"].max()) > 0, name  # maps mark motion
        assert next(iter(loaders.val))["label"].tolist() == [0, 1], name


def test_a_video_is_rewritten_from_scratch_and_a_bad_one_fails_or_is_skipped(tmp_path):
    data = tmp_path
    source = _source(data)
    job = _job(data, source)
    work = Workspace(data, "in_a", job)
    first = job.items[0]
    stale = work.partial / "processed_frames2" / first.path / "rgb" / "rgb0099.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left by a worker that died")
    work.ingest(first)
    assert not stale.exists()  # a rerun does not trust a half-written folder

    (source / "broken.mp4").write_bytes(b"\0" * 1000)
    with pytest.raises(VideoError) as e:  # the planner probes every video first
        plan(job.request.model_copy(update={"labels": "bad.csv"}), _with_row(source, "broken.mp4,stir,0,1,S1\n"))
    assert str(e.value).startswith("broken.mp4: ") and str(tmp_path) not in str(e.value)

    (source / "S2.mp4").write_bytes(b"\0" * 1000)  # a recording that breaks after it was planned
    with pytest.raises(VideoError) as e:
        work.ingest(job.items[2])
    assert str(e.value).startswith("S2.mp4: ")
    skipping = Workspace(data, "in_b", job.model_copy(update={"request": job.request.model_copy(
        update={"on_error": "skip"})}))
    for item in job.items:
        skipping.ingest(item)
    result = skipping.publish()
    assert result["videos"] == 2 and result["skipped"] == 2
    skipping.discard()
    assert skipping.publish() == result  # a rerun after a crash past the move: published, the same result
    manifest = (data / "mini" / MANIFEST).read_text()
    assert '"file": "S2.mp4"' in manifest and "S2.mp4: " in manifest


def _with_row(source, row: str):
    text = (source / "labels.csv").read_text()
    (source / "bad.csv").write_text(text + row)
    return source


def test_a_segment_past_the_recording_s_end_is_refused_naming_the_line(tmp_path):
    source = _source(tmp_path)
    request = IngestRequest(name="x", source="incoming", labels="bad.csv")
    _with_row(source, "S1.mp4,stir,1.0,99.0,S1\n")
    with pytest.raises(LabelError) as e:
        plan(request, source)
    assert e.value.field == "labels" and "line 6" in str(e.value) and "past the end" in str(e.value)
