"""The dataset report: a summary that counts right, and a validation that finds each break
made in a copy of the synthetic dataset, calling an error exactly what the loader refuses."""
import shutil
from pathlib import Path

import pytest

from fpar_models.data.gtea61 import FLOW_DIRS, RGB_DIR, DatasetError, scan
from fpar_models.data.report import summary, validate
from fpar_models.data.synthetic import ACTIONS, USERS, generate

VIDEO = Path("S1", "lift_cup", "1")


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("report") / "synthetic", videos_per_class=1)


@pytest.fixture
def root(clean, tmp_path) -> Path:
    return Path(shutil.copytree(clean, tmp_path / "copy"))


def _kinds(findings, severity=None) -> set[tuple[str, str]]:
    return {(f.kind, f.path) for f in findings if severity in (None, f.severity)}


def _loader_message(root: Path, **streams) -> str:
    with pytest.raises(DatasetError) as e:
        scan(root, list(USERS), **streams)
    return str(e.value).replace(f"{root}/", "")


def test_summary_counts_users_classes_videos_frames_and_streams(clean):
    s = summary(clean)
    assert s.users == list(USERS) and s.classes == sorted(ACTIONS)
    assert s.videos == len(USERS) * len(ACTIONS) and len(s.entries) == s.videos
    assert s.frames == sum(len(v.frames) for v in scan(clean, list(USERS)))
    assert s.rgb and s.flow and s.maps
    assert s.counts == {u: dict.fromkeys(sorted(ACTIONS), 1) for u in USERS}
    assert "S1/lift_cup/1" in s.entries
    assert s.model_dump_json()  # JSON-able as the API returns it


def test_a_clean_dataset_has_no_errors_only_its_known_quirks(clean):
    findings = validate(clean)
    assert not [f for f in findings if f.severity == "error"]
    # the synthetic dataset's GTEA61 quirks: hidden .DS_Store folders, a few missing first maps
    assert {f.kind for f in findings} == {"hidden-ignored", "first-map-missing"}
    assert ("hidden-ignored", "processed_frames2/S1/.DS_Store") in _kinds(findings, "info")
    assert all(f.path.startswith("processed_frames2/S3/") for f in findings if f.kind == "first-map-missing")


def test_a_video_without_frames_is_the_error_the_loader_raises(root):
    shutil.rmtree(root / RGB_DIR / VIDEO / "rgb")
    findings = validate(root)
    error = next(f for f in findings if f.kind == "no-frames")
    assert (error.path, error.severity) == (f"{RGB_DIR}/{VIDEO}/rgb", "error")
    assert error.message == _loader_message(root) == f"{RGB_DIR}/{VIDEO}/rgb: video has no frames"
    assert str(root) not in error.message  # no server paths in the report
    assert not summary(root).rgb


def test_flow_breaks(root):
    x, y = (root / d / VIDEO for d in FLOW_DIRS)
    for path in sorted(x.iterdir())[-3:] + sorted(y.iterdir())[-3:]:
        path.unlink()  # truncated: fewer flow images than frame pairs
    other = Path("S2", "open_box", "1")
    sorted((root / FLOW_DIRS[1] / other).iterdir())[0].unlink()
    shutil.rmtree(root / FLOW_DIRS[0] / "S3" / "close_box" / "1")
    findings = validate(root)
    kinds = _kinds(findings)
    assert ("flow-short", f"{FLOW_DIRS[0]}/{VIDEO}") in _kinds(findings, "warning")
    assert ("flow-xy-differ", f"{FLOW_DIRS[1]}/{other}") in _kinds(findings, "error")
    assert ("no-flow", f"{FLOW_DIRS[0]}/S3/close_box/1") in kinds
    differ = next(f for f in findings if f.kind == "flow-xy-differ")
    assert differ.message == f"{FLOW_DIRS[1]}/{other}: flow x and y differ at image 1"
    assert len([f for f in findings if f.severity == "error"]) == 2
    assert not summary(root).flow


def test_maps_missing_first_and_all(root):
    shutil.rmtree(root / RGB_DIR / VIDEO / "mmaps")
    (root / RGB_DIR / "S2" / "open_box" / "1" / "mmaps" / "map0001.png").unlink()
    (root / RGB_DIR / "S2" / "open_box" / "1" / "mmaps" / "map0003.png").unlink()
    findings = validate(root)
    assert ("no-maps", f"{RGB_DIR}/{VIDEO}/mmaps") in _kinds(findings, "error")
    assert ("first-map-missing", f"{RGB_DIR}/S2/open_box/1/mmaps") in _kinds(findings, "warning")
    assert ("maps-missing", f"{RGB_DIR}/S2/open_box/1/mmaps") in _kinds(findings, "warning")
    assert next(f for f in findings if f.kind == "no-maps").message == _loader_message(root, maps=True)


def test_a_class_absent_from_a_user_and_hidden_entries(root):
    shutil.rmtree(root / RGB_DIR / "S2" / "close_box")
    (root / RGB_DIR / VIDEO / "rgb" / ".DS_Store").write_bytes(b"\0")
    (root / RGB_DIR / "S1" / "lift_cup" / "notes.txt").write_text("x")
    findings = validate(root)
    assert ("class-missing-for-user", f"{RGB_DIR}/S2") in _kinds(findings, "warning")
    assert ("hidden-ignored", f"{RGB_DIR}/{VIDEO}/rgb/.DS_Store") in _kinds(findings, "info")
    assert ("file-ignored", f"{RGB_DIR}/S1/lift_cup/notes.txt") in _kinds(findings, "info")
    assert not [f for f in findings if f.severity == "error"]
    assert summary(root).counts["S2"]["close_box"] == 0


def test_unreadable_images_and_orphan_flow(root):
    (root / RGB_DIR / VIDEO / "rgb" / "rgb0001.png").write_bytes(b"not a png")
    (root / RGB_DIR / VIDEO / "rgb" / "rgb0002.png").write_bytes(b"")
    shutil.copytree(root / FLOW_DIRS[0] / VIDEO, root / FLOW_DIRS[0] / "S1" / "lift_cup" / "9")
    findings = validate(root)
    assert ("unreadable-image", f"{RGB_DIR}/{VIDEO}/rgb/rgb0001.png") in _kinds(findings, "error")
    assert ("unreadable-image", f"{RGB_DIR}/{VIDEO}/rgb/rgb0002.png") in _kinds(findings, "error")
    assert ("flow-orphan", f"{FLOW_DIRS[0]}/S1/lift_cup/9") in _kinds(findings, "info")


def test_a_flow_only_dataset_is_valid_for_flow_models(root):
    for entry in summary(root).entries:
        shutil.rmtree(root / RGB_DIR / entry / "rgb")
        shutil.rmtree(root / RGB_DIR / entry / "mmaps")
    findings = validate(root)
    assert not [f for f in findings if f.severity == "error"]
    assert {("rgb-absent", "."), ("maps-absent", ".")} <= _kinds(findings, "info")
    s = summary(root)
    assert (s.rgb, s.maps, s.flow, s.frames) == (False, False, True, 0)
    assert len(scan(root, list(USERS), rgb=False, flow=True)) == s.videos  # the loader agrees


def test_not_a_dataset(tmp_path, root):
    assert [(f.kind, f.severity) for f in validate(tmp_path / "nothing")] == [("not-a-dataset", "error")]
    shutil.rmtree(root / RGB_DIR)
    [finding] = validate(root)
    assert finding.kind == "not-a-dataset" and "processed_frames2: missing folder" in finding.message
    with pytest.raises(DatasetError):
        summary(root)
    empty = tmp_path / "empty"
    (empty / RGB_DIR / "S1").mkdir(parents=True)
    assert ("no-videos", RGB_DIR) in _kinds(validate(empty), "error")
    assert ("user-no-videos", f"{RGB_DIR}/S1") in _kinds(validate(empty), "warning")
