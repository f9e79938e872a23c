"""Image and video bombs: a few hundred bytes must not cost the gateway gigabytes. Every
bomb is refused with a 422 naming the part before it is decoded, a large but legitimate
request is decoded within bounded memory, and the gateway's peak resident memory over
the whole battery stays under a stated bound."""
import io

import av
import httpx
import numpy as np
import pytest
from PIL import Image

from launcher import free_port

PEAK_MB = 600  # the gateway's VmHWM after the whole battery


def png(width: int, height: int, mode: str = "1") -> bytes:
    """A PNG of one flat colour: a few hundred bytes whatever its size."""
    buf = io.BytesIO()
    Image.new(mode, (width, height)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def video(width: int, height: int, frames: int = 2) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for _ in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.zeros((height, width, 3), np.uint8),
                                                                   format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def frames(*images: bytes) -> list:
    return [("frames", (f"f{i}.png", data, "image/png")) for i, data in enumerate(images)]


SMALL = png(96, 72, "RGB")
BOMBS = [  # (case, files, what the 422 must name)
    ("strip 1 x 50000", frames(SMALL, png(1, 50_000)), "frames[1]"),
    ("strip 50000 x 1", frames(png(50_000, 1)), "frames[0]"),
    ("strip 1 x 100000", frames(png(1, 100_000)), "frames[0]"),
    ("9500 x 9500 (90 MP)", frames(png(9_500, 9_500)), "frames[0]"),
    ("7000 x 7000 (49 MP)", frames(SMALL, SMALL, png(7_000, 7_000)), "frames[2]"),
    ("200 frames of 4 MP", frames(*[png(2_000, 2_000)] * 200), "frames"),
    ("video of 4096 x 16 frames", [("video", ("v.mp4", video(4096, 16), "video/mp4"))], "video"),
    ("video of 4200 x 4000 frames", [("video", ("v.mp4", video(4200, 4000, 1), "video/mp4"))], "video"),
]


def vm_hwm_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


@pytest.fixture(scope="module")
def gateway(stack, trained):
    """A gateway of its own, so its peak memory is the battery's alone."""
    url = stack.add_gateway("gateway-bombs", free_port(), {})
    yield url, stack.procs["gateway-bombs"].pid
    stack.remove("gateway-bombs")


def test_bombs_are_refused_naming_the_part_and_memory_stays_bounded(gateway, capsys):
    url, pid = gateway
    started = vm_hwm_mb(pid)
    with httpx.Client(base_url=url, timeout=120) as c:
        for case, files, part in BOMBS:
            r = c.post("/predict", files=files)
            assert r.status_code == 422, (case, r.status_code, r.text[:300])
            assert part in r.json()["detail"], (case, r.json()["detail"])
        # large but legitimate: 8 frames just under the pixel limit are decoded, two at a time
        big = png(4_000, 3_900, "RGB")
        r = c.post("/predict", files=frames(*[big] * 8), data={"wait": "60"})
        assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text[:300]
        assert c.get("/readyz").status_code == 200
    peak = vm_hwm_mb(pid)
    with capsys.disabled():
        print(f"\ngateway VmHWM: {started:.0f} MB at start, {peak:.0f} MB after the bomb battery")
    assert peak < PEAK_MB, f"gateway peak {peak:.0f} MB (at start {started:.0f} MB)"
