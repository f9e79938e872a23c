"""Upload limits from the header, before any decoding (the API battery in
api_tests/test_bombs.py measures the gateway's memory under them)."""
import io

import pytest
from PIL import Image

from service.errors import Problem
from service.uploads import Limits, flow_from_images, rgb_from_images


def png(width: int, height: int, mode: str = "1") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (width, height)).save(buf, format="PNG")
    return buf.getvalue()


def _refused(fn, *args) -> Problem:
    with pytest.raises(Problem) as info:
        fn(*args)
    assert info.value.status == 422
    return info.value


def test_pixels_aspect_and_budget_are_checked_from_headers():
    limits = Limits(pixels=1_000_000, aspect=4, decoded_bytes=3_000_000)
    ok = png(200, 150, "RGB")
    assert rgb_from_images([("a", ok), ("b", ok)], 4, 32, limits).shape == (4, 32, 32, 3)
    big = _refused(rgb_from_images, [("a", ok), ("big.png", png(1500, 1000))], 4, 32, limits)
    assert big.errors[0]["loc"] == ["frames", 1] and "frames[1] ('big.png') is 1500 x 1000 = 1.5 MP" in big.detail
    strip = _refused(rgb_from_images, [(None, png(10, 900))], 4, 32, limits)
    assert "longer than 4:1 (FPAR_MAX_ASPECT)" in strip.detail
    budget = _refused(rgb_from_images, [(None, png(900, 900, "RGB"))] * 2, 4, 32, limits)
    assert budget.errors[0]["loc"] == ["frames"] and "FPAR_MAX_DECODE_MB" in budget.detail


def test_flow_images_obey_the_same_limits():
    limits = Limits(pixels=1_000_000, aspect=4)
    ok = png(96, 72, "L")
    assert flow_from_images([(None, ok)] * 5, [(None, ok)] * 5, 5, 1, 32, limits).shape == (1, 10, 32, 32)
    strip = _refused(flow_from_images, [(None, ok), ("x.png", png(1, 60_000))], [(None, ok)] * 2, 5, 1, 32, limits)
    assert strip.errors[0]["loc"] == ["flow_x", 1] and "flow_x[1] ('x.png') is 1 x 60000" in strip.detail


def test_uploads_are_sampled_as_the_model_was_trained(tmp_path):
    """Frames, a video and OIP arrays pick the model's sampling's frames (each a flat grey
    level k*40, so a picked frame is known by its value)."""
    import av
    import numpy as np

    from service.uploads import rgb_from_array, rgb_from_video

    levels = [np.full((48, 64, 3), 40 * k, np.uint8) for k in range(6)]
    files = []
    for k, frame in enumerate(levels):
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="PNG")
        files.append((f"{k}.png", buf.getvalue()))
    path = tmp_path / "v.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=6)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for frame in levels:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    for sampling, picked in (("reference", [0, 0, 1, 2, 3, 4]), ("centre", [0, 1, 2, 3, 4, 5])):
        for views in (rgb_from_images(files, 6, 32, Limits(), sampling),
                      rgb_from_array(np.stack(levels), 6, 32, "frames", Limits(), sampling),
                      rgb_from_video(path.read_bytes(), 6, 32, 64, Limits(), sampling)):
            assert [round(float(v.mean()) / 40) for v in views] == picked, sampling
