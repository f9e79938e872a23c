import numpy as np
import pytest

from core.frames import pack, unpack


def test_frames_round_trip_without_pickle():
    rgb = np.random.default_rng(0).integers(0, 255, (4, 8, 8, 3), dtype=np.uint8)
    flow = np.arange(2 * 10 * 8 * 8, dtype=np.uint8).reshape(2, 10, 8, 8)
    back = unpack(pack({"rgb": rgb, "flow": flow}))
    assert np.array_equal(back["rgb"], rgb) and np.array_equal(back["flow"], flow)


def test_only_uint8_is_accepted():
    with pytest.raises(ValueError, match="dtype"):
        unpack(pack({"rgb": np.zeros((2, 2), dtype=np.float64)}))
