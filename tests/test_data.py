import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fpar_models.data.dataset import ClipDataset, EpochSampler
from fpar_models.data.gtea61 import DatasetError, class_names, scan
from fpar_models.data.synthetic import ACTIONS, COLOURS
from fpar_models.data.transforms import Crop, apply_crop, stack_starts, uniform_indices


def _png(path: Path, value: int = 100, size=(12, 10), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode == "L" else (value,) * 3).save(path)


def _video(root: Path, user: str, action: str, video: str = "1", frames: int = 3):
    for i in range(1, frames + 1):
        _png(root / "processed_frames2" / user / action / video / "rgb" / f"rgb{i:04d}.png")


def test_class_ids_come_from_the_union_of_all_users(tmp_path):
    _video(tmp_path, "S1", "open_jam")
    _video(tmp_path, "S1", "take_bread")
    _video(tmp_path, "S2", "close_jam")  # S2 lacks the others, S1 lacks this one
    assert class_names(tmp_path) == ["close_jam", "open_jam", "take_bread"]
    labels = {v.action: v.label for v in scan(tmp_path, ["S1"])}
    assert labels == {"open_jam": 1, "take_bread": 2}


def test_hidden_entries_are_ignored(data_dir):
    root = data_dir / "synthetic"
    assert (root / "processed_frames2" / "S1" / ".DS_Store").exists()
    assert class_names(root) == sorted(ACTIONS)
    assert len(scan(root, ["S1"])) == len(ACTIONS) * 3


def test_missing_first_motion_map_uses_the_next(data_dir):
    video = next(v for v in scan(data_dir / "synthetic", ["S3"], maps=True) if v.name == "1")
    assert video.maps[0] is None
    assert video.map_for(0) == video.maps[1] and video.map_for(0).name == "map0002.png"


@pytest.mark.parametrize("damage, message", [
    (lambda r: None, "processed_frames2: missing folder"),
    (lambda r: _video(r, "S2", "a"), "S1: missing folder"),
    (lambda r: (r / "processed_frames2/S1/a/1/rgb").mkdir(parents=True), "video has no frames"),
])
def test_malformed_dataset_names_the_path(tmp_path, damage, message):
    damage(tmp_path)
    with pytest.raises(DatasetError, match=message) as info:
        scan(tmp_path, ["S1"])
    assert str(tmp_path) in str(info.value)


def test_missing_flow_and_unreadable_images_name_the_path(tmp_path):
    _video(tmp_path, "S1", "a")
    with pytest.raises(DatasetError, match="flow_x_processed/S1/a/1: video has no flow images"):
        scan(tmp_path, ["S1"], flow=True)
    broken = tmp_path / "processed_frames2/S1/a/1/rgb/rgb0002.png"
    broken.write_bytes(broken.read_bytes()[:20])  # truncated PNG
    dataset = ClipDataset(scan(tmp_path, ["S1"]), image_size=32, train=False, frames=3)
    with pytest.raises(DatasetError, match="rgb0002.png: unreadable image"):
        dataset[0]


def test_uniform_sampling_spreads_and_repeats():
    assert uniform_indices(10, 5) == [1, 3, 5, 7, 9]
    assert uniform_indices(3, 6) == [0, 0, 1, 1, 2, 2]
    assert uniform_indices(1, 4) == [0, 0, 0, 0]
    assert stack_starts(20, 5, 5, "centre") == [0, 4, 8, 11, 15]
    assert stack_starts(3, 5, 2, "centre") == [0, 0]


def test_flip_mirrors_and_inverts_x_flow():
    flow = Image.fromarray(np.tile(np.arange(8, dtype=np.uint8) * 10, (8, 1)))
    crop = Crop(8, scale=1.0, position="c", flip=True)
    assert apply_crop(flow, crop)[0].tolist() == [70, 60, 50, 40, 30, 20, 10, 0]
    assert apply_crop(flow, crop, invert_on_flip=True)[0].tolist() == [185, 195, 205, 215, 225, 235, 245, 255]


def test_clip_shapes_and_flow_interleaving(data_dir):
    videos = scan(data_dir / "synthetic", ["S1"], maps=True, flow=True)
    train = ClipDataset(videos, image_size=64, train=True, frames=4, map_grid=2, flow_stack=5, seed=3)
    item = train[0]
    assert item["rgb"].shape == (4, 3, 64, 64) and item["rgb"].dtype.is_floating_point is False
    assert item["maps"].shape == (4, 2, 2) and 0 <= item["maps"].min() <= item["maps"].max() <= 1
    assert item["flow"].shape == (1, 10, 64, 64)
    val = ClipDataset(videos, image_size=64, train=False, frames=4, flow_stack=5, eval_stacks=5, rgb=False)
    stacks = val[0]["flow"]
    assert stacks.shape == (5, 10, 64, 64) and "rgb" not in val[0]
    # even channels are x-flows: the synthetic x-flow is flat 128 for vertical motion
    action = videos[0].action
    if ACTIONS[action][1] == "vertical":
        assert (stacks[:, 0::2] == 128).all() and not (stacks[:, 1::2] == 128).all()


def test_frames_and_maps_share_one_random_crop(data_dir):
    videos = scan(data_dir / "synthetic", ["S1"], maps=True)
    dataset = ClipDataset(videos, image_size=64, train=True, frames=4, map_grid=64, seed=0)
    rng = random.Random(0)
    for idx in rng.sample(range(len(videos)), 6):
        item = dataset[idx]
        colour = np.array(COLOURS[ACTIONS[videos[idx].action][0]], dtype=np.float32)
        rgb = item["rgb"].permute(0, 2, 3, 1).numpy().astype(np.float32)
        near_object = np.linalg.norm(rgb - colour * 1.0, axis=-1) < 60
        on_map = item["maps"].numpy() > 0.5
        if on_map.sum() > 20:  # object in view: the map must sit on the object's pixels
            assert (near_object & on_map).sum() / on_map.sum() > 0.8


def test_same_seed_epoch_index_gives_the_same_clip(data_dir):
    videos = scan(data_dir / "synthetic", ["S1"])
    a = ClipDataset(videos, image_size=64, train=True, frames=4, seed=5)
    b = ClipDataset(videos, image_size=64, train=True, frames=4, seed=5)
    a.set_epoch(2)
    b.set_epoch(2)
    assert (a[3]["rgb"] == b[3]["rgb"]).all()
    b.set_epoch(3)
    assert any(not (a[i]["rgb"] == b[i]["rgb"]).all() for i in range(6))


def test_persistent_loader_workers_follow_the_epoch(data_dir):
    """Workers that outlive an epoch (to keep their frame caches) still draw each
    epoch's crops: the epoch travels with every index."""
    videos = scan(data_dir / "synthetic", ["S1"])[:4]
    dataset = ClipDataset(videos, image_size=64, train=True, frames=2, seed=1)
    sampler = EpochSampler(len(dataset), shuffle=True, seed=1)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, sampler=sampler, num_workers=2,
                                         persistent_workers=True)

    def epoch(e):
        sampler.set_epoch(e)
        [batch] = list(loader)
        return batch

    first, second, again = epoch(0), epoch(1), epoch(0)
    assert torch.equal(first["rgb"], again["rgb"]) and torch.equal(first["label"], again["label"])
    assert not torch.equal(first["rgb"], second["rgb"])
    assert first["rgb"].is_contiguous()  # channels-first in memory, not a permuted view
