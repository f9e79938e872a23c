import os
import time

import numpy as np
import pytest

from core.frames import FrameSpool, RedisFrames, open_frames
from core.settings import Settings


@pytest.mark.parametrize("where", ["folder", "redis"])
def test_frames_round_trip_without_pickle(tmp_path, request, where):
    if where == "redis":  # hosts that share no data folder
        import redis
        client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
        spool = open_frames(Settings(data_dir=tmp_path, data_store="s3://fpar/data", predict_ttl_s=60), client)
        assert isinstance(spool, RedisFrames)
    else:
        spool = open_frames(Settings(data_dir=tmp_path), None)
    rgb = np.random.default_rng(0).integers(0, 255, (4, 8, 8, 3), dtype=np.uint8)
    flow = np.arange(2 * 10 * 8 * 8, dtype=np.uint8).reshape(2, 10, 8, 8)
    spool.put("pr_1", {"rgb": rgb, "flow": flow})
    back = spool.get("pr_1")
    assert np.array_equal(back["rgb"], rgb) and np.array_equal(back["flow"], flow)
    spool.remove("pr_1")
    assert spool.get("pr_1") is None
    if where == "redis":
        spool.put("pr_2", {"rgb": rgb})
        assert 0 < client.ttl("fpar:frames:pr_2") <= 60  # it expires with the prediction


def test_only_uint8_is_accepted(tmp_path):
    FrameSpool(tmp_path).put("pr_1", {"rgb": np.zeros((2, 2), dtype=np.float64)})
    with pytest.raises(ValueError, match="dtype"):
        FrameSpool(tmp_path).get("pr_1")


def test_the_frame_spool_writes_whole_files_and_sweeps_what_was_left(tmp_path):
    spool = FrameSpool(tmp_path)
    rgb = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    spool.put("pr_1", {"rgb": rgb})
    spool.put("pr_2", {"rgb": rgb[::-1]})  # not contiguous: written as it reads
    assert np.array_equal(spool.get("pr_1")["rgb"], rgb) and np.array_equal(spool.get("pr_2")["rgb"], rgb[::-1])
    assert sorted(p.name for p in (tmp_path / ".frames").iterdir()) == ["pr_1", "pr_2"]  # no .part left
    spool.remove("pr_1", "pr_missing")
    assert spool.get("pr_1") is None
    (tmp_path / ".frames" / "pr_3.part").write_bytes(b"half")  # a gateway that died mid-write
    old = time.time() - 100
    for name in ("pr_2", "pr_3.part"):
        os.utime(tmp_path / ".frames" / name, (old, old))
    spool.put("pr_4", {"rgb": rgb})
    assert spool.sweep(older_than_s=50) == 2 and [p.name for p in (tmp_path / ".frames").iterdir()] == ["pr_4"]
    assert FrameSpool(tmp_path / "nowhere").sweep(1) == 0
