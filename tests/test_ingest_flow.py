"""Decoding, flow, warp flow, motion maps and the written layout, on real mp4 files whose
motion is known (fpar_models.data.recordings writes them): a textured square moving over a
textured background, with and without a camera pan. Tiny frames (64x48), few of them."""
from __future__ import annotations

import io

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from fpar_models.data.gtea61 import scan
from fpar_models.data.recordings import labels_csv, moving_square, write_recording
from fpar_models.data.synthetic import USERS, render
from fpar_models.ingest.flow import FLOW_METHODS, FlowEngine, colour_wheel, motion_map, quantise
from fpar_models.ingest.layout import Cancelled, VideoDirs, write_video
from fpar_models.ingest.preview import preview_png
from fpar_models.ingest.video import VideoError, probe, read_frames

BOUND = 20
STEP = 255 / (2 * BOUND)   # quantised levels per px


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("rec") / "kitchen.mp4"
    return write_recording(path, [("S1", "lift_cup", 0), ("S1", "open_box", 1), ("S2", "lower_ball", 0)], fps=12)


def square(tmp_path, velocity, pan=(0, 0), frames=6):
    motion = moving_square(tmp_path / f"sq_{velocity}_{pan}.mp4", frames, velocity=velocity, pan=pan, square=20)
    return motion, list(read_frames(motion.path))


def flows(method: str, frames: list[np.ndarray]):
    engine = FlowEngine(method, bound=BOUND)
    return [engine.pair(a, b) for a, b in zip(frames, frames[1:])]


def inside(motion, k: int) -> np.ndarray:
    """Pixels of the square in frames k and k+1, two px in from its edges (where flow is smoothed)."""
    both = motion.masks[k] & motion.masks[k + 1]
    ys, xs = np.nonzero(both)
    core = np.zeros_like(both)
    core[ys.min() + 2:ys.max() - 1, xs.min() + 2:xs.max() - 1] = True
    return core


def near(motion, k: int, px: int = 5) -> np.ndarray:
    """The square in frames k and k+1 and `px` around it (the flow's smoothing reaches there)."""
    both = motion.masks[k] | motion.masks[k + 1]
    return cv2.dilate(both.astype(np.uint8), np.ones((2 * px + 1, 2 * px + 1), np.uint8)) > 0


# -- decoding ----------------------------------------------------------------------------------

def test_probe_says_what_the_recording_holds(recording):
    info = probe(recording.path)
    assert (info.width, info.height, info.fps, info.frames) == (96, 72, 12, recording.frames)
    assert info.duration_s == pytest.approx(recording.duration_s, abs=1 / 12)
    assert recording.codec in ("libx264", "mpeg4")
    assert labels_csv([recording]).splitlines()[:2] == [
        "video,label,start,end,user", f"kitchen.mp4,lift_cup,{3 / 12:.4f},{20 / 12:.4f},S1"]


def test_read_frames_resamples_scales_and_seeks(recording):
    every = list(read_frames(recording.path))
    assert len(every) == recording.frames and every[0].shape == (72, 96, 3) and every[0].dtype == np.uint8
    assert len(list(read_frames(recording.path, fps=6))) == -(-recording.frames // 2)
    doubled = list(read_frames(recording.path, fps=24))
    assert len(doubled) == 2 * recording.frames and (doubled[10] == doubled[11]).all()   # repeated, not blended
    assert next(read_frames(recording.path, shorter_side=36)).shape == (36, 48, 3)
    for clip in recording.clips:   # [start, end) is exactly the clip's frames, past key frames too
        truth = every[clip.first:clip.first + clip.frames]
        for start, end in ((clip.start_s, clip.end_s), (round(clip.start_s, 2), round(clip.end_s, 2))):
            segment = list(read_frames(recording.path, start, end))   # and with times rounded as in EPIC's CSVs
            assert len(segment) == clip.frames and all((a == b).all() for a, b in zip(segment, truth))
        assert len(list(read_frames(recording.path, clip.start_s, clip.end_s, fps=24))) == 2 * clip.frames
    clip = recording.clips[1]
    rendered = render(USERS.index(clip.user), clip.action, clip.index, 0).frames
    decoded = list(read_frames(recording.path, clip.start_s, clip.end_s))
    error = np.mean([np.abs(np.clip(r, 0, 255) - d).mean() for r, d in zip(rendered, decoded)])
    assert error < 8   # the synthetic dataset's pixels, through a near-lossless codec
    assert list(read_frames(recording.path, recording.duration_s + 1, recording.duration_s + 2)) == []


def test_a_file_that_is_not_a_video_is_named(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("participant_id,video_id\n")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    sound = tmp_path / "sound.m4a"
    with av.open(str(sound), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    for path, why in ((text, "not a readable video"), (empty, ""), (sound, "no video stream")):
        with pytest.raises(VideoError, match=path.name) as e:
            probe(path)
        assert why in str(e.value)
        with pytest.raises(VideoError, match=path.name):
            list(read_frames(path))
    with pytest.raises(VideoError, match="missing.mp4"):
        probe(tmp_path / "missing.mp4")


# -- flow --------------------------------------------------------------------------------------

def test_quantisation_is_dense_flows():
    x, y = quantise(np.float32([[[0, 20], [-20, 25]]]), BOUND)
    assert x.tolist() == [[128, 0]] and y.tolist() == [[255, 255]]
    wheel = colour_wheel(np.float32([[[0, 0], [20, 0]]]), BOUND)
    assert wheel[0, 0].tolist() == [255, 255, 255] and wheel[0, 1].tolist() == [255, 0, 0]   # still: white; right: red


@pytest.mark.parametrize("method", FLOW_METHODS)
def test_flow_has_the_sign_and_size_of_the_motion(tmp_path, method):
    for velocity in ((3, -2), (-3, 2)):   # and flipped
        motion, frames = square(tmp_path, velocity)
        qs = []
        for k, pair in enumerate(flows(method, frames)):
            x, y = quantise(pair.flow, BOUND)
            core = inside(motion, k)
            qs.append((np.median(x[core]) - 128, np.median(y[core]) - 128))
            still = ~near(motion, k)
            assert abs(np.median(x[still]) - 128) <= 1 and abs(np.median(y[still]) - 128) <= 1   # 128: none
        qx, qy = np.median(qs, 0)
        for q, v in ((qx, velocity[0]), (qy, velocity[1])):
            assert np.sign(q) == np.sign(v) and 0.5 * abs(v) * STEP <= abs(q) <= 1.5 * abs(v) * STEP, (method, qs)


@pytest.mark.parametrize("method", FLOW_METHODS)
def test_warp_flow_removes_the_camera_and_keeps_the_object(tmp_path, method):
    motion, frames = square(tmp_path, (0, 0), pan=(3, 1))   # a pure pan
    pairs = flows(method, frames)
    raw = np.median([np.hypot(p.raw[..., 0], p.raw[..., 1]) for p in pairs])
    warp = np.median([np.hypot(p.flow[..., 0], p.flow[..., 1]) for p in pairs])
    assert raw == pytest.approx(np.hypot(3, 1), rel=0.15)
    assert warp * 5 <= raw, (raw, warp)
    assert all(p.homography is not None for p in pairs)
    motion, frames = square(tmp_path, (0, -2), pan=(2, 0))   # the square moves up while the camera pans
    for k, pair in enumerate(flows(method, frames)):
        core = inside(motion, k)
        assert np.median(pair.raw[core], 0) == pytest.approx((2, -2), abs=0.7)
        assert np.median(pair.flow[core], 0) == pytest.approx((0, -2), abs=0.7)   # its own motion remains
        background = ~(motion.masks[k] | motion.masks[k + 1])
        assert np.median(np.abs(pair.flow[background])) < 0.2


@pytest.mark.parametrize("method", FLOW_METHODS)
def test_motion_maps_light_up_the_moving_object(tmp_path, method):
    motion, frames = square(tmp_path, (2, -1), pan=(-2, 1))
    rng = np.random.default_rng(0)
    for k, pair in enumerate(flows(method, frames)):
        lit = motion_map(pair.flow) / 255 > 0.4            # as the loader binarises them
        truth = motion.masks[k]
        chance = rng.permutation(lit.ravel()).reshape(lit.shape)   # as many lit pixels, anywhere
        iou = (lit & truth).sum() / (lit | truth).sum()
        chance_iou = (chance & truth).sum() / (chance | truth).sum()
        assert iou > 0.3 and iou > 3 * chance_iou, (method, k, iou, chance_iou)
        assert (lit & truth).sum() / truth.sum() > 0.7                  # most of the object
        assert lit[~near(motion, k, 8)].mean() < 0.05   # hardly any of the panning table (Farneback smooths over 15 px)


# -- layout ------------------------------------------------------------------------------------

def test_write_video_writes_the_gtea61_layout(tmp_path, recording):
    root = tmp_path / "ds"
    for i, clip in enumerate(recording.clips[:2]):
        dirs = VideoDirs.of(root, clip.user, clip.action, str(i + 1))
        count = write_video(read_frames(recording.path, clip.start_s, clip.end_s), dirs,
                            engine=FlowEngine("dis", bound=BOUND), maps=True)
        assert count == clip.frames
        n = count
        assert sorted(p.name for p in dirs.rgb.iterdir()) == [f"rgb{i:04d}.png" for i in range(1, n + 1)]
        assert sorted(p.name for p in dirs.flow_x.iterdir()) == [f"flow_x_{i:05d}.png" for i in range(1, n)]
        assert sorted(p.name for p in dirs.flow_y.iterdir()) == [f"flow_y_{i:05d}.png" for i in range(1, n)]
        assert sorted(p.name for p in dirs.mmaps.iterdir()) == [f"map{i:04d}.png" for i in range(2, n + 1)]
        assert Image.open(dirs.flow_x / "flow_x_00001.png").mode == "L"
        assert Image.open(dirs.rgb / "rgb0001.png").size == (96, 72)
    videos = scan(root, ["S1"], maps=True, flow=True)
    assert [(v.action, len(v.frames), len(v.flow_x)) for v in videos] == [
        (c.action, c.frames, c.frames - 1) for c in sorted(recording.clips[:2], key=lambda c: c.action)]
    assert videos[0].map_for(0).name == "map0002.png"   # the missing first map, as in GTEA61
    # decoded frames are what was written
    first = np.asarray(Image.open(videos[0].frames[0]))
    clip = next(c for c in recording.clips if c.action == videos[0].action)
    assert (first == next(read_frames(recording.path, clip.start_s, clip.end_s))).all()


def test_write_video_without_flow_and_cancelled(tmp_path, recording):
    clip = recording.clips[0]
    plain = VideoDirs.of(tmp_path, "S1", clip.action, "1")
    assert write_video(read_frames(recording.path, clip.start_s, clip.end_s), plain, engine=None, maps=False) == clip.frames
    assert not plain.mmaps.exists() and not plain.flow_x.exists()
    maps_only = VideoDirs.of(tmp_path, "S1", clip.action, "2")
    write_video(read_frames(recording.path, clip.start_s, clip.end_s), maps_only, engine=None, maps=True)
    assert len(list(maps_only.mmaps.iterdir())) == clip.frames - 1 and not maps_only.flow_x.exists()
    calls = iter(range(100))
    stopped = VideoDirs.of(tmp_path, "S1", clip.action, "3")
    with pytest.raises(Cancelled):
        write_video(read_frames(recording.path), stopped, engine=FlowEngine(), maps=True,
                    should_stop=lambda: next(calls) >= 3)
    assert len(list(stopped.rgb.iterdir())) == 3 and len(list(stopped.flow_x.iterdir())) == 2
    stopped.clear()
    assert not stopped.rgb.parent.exists() and not stopped.flow_x.exists()


def test_preview_png(tmp_path, recording):
    clip = recording.clips[0]
    write_video(read_frames(recording.path, clip.start_s, clip.end_s),
                VideoDirs.of(tmp_path, clip.user, clip.action, "1"), engine=FlowEngine(), maps=True)
    png = preview_png(tmp_path)
    assert png == preview_png(tmp_path, f"{clip.user}/{clip.action}/1")
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and 1.5 < image.width / image.height < 3.5 and image.height >= 600
    with pytest.raises(KeyError):
        preview_png(tmp_path, "S1/no_such/1")
    with pytest.raises(ValueError):
        preview_png(tmp_path, "../S1/x")
