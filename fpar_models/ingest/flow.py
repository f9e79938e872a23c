"""Optical flow between consecutive frames, the camera's motion removed (warp flow), as the
reference data was made, and the motion maps the attention heads learn from.

    pair(prev, next)
      grey ─ flow ─────────────────────────────▶ raw
               │ points: ORB matches (within 25 px) + corners moved by the raw flow
               ▼ homography (RANSAC, 1 px; kept with > 25 inliers, else identity)
      next warped onto prev ─ flow again ──────▶ flow (warp flow: what moved in the scene)

This is TSN's dense_flow warp flow (itself iDT's camera-motion removal) with ORB in place
of SURF (non-free, not in the OpenCV wheels). Where the warped frame has no pixels (the
border the camera brought into view) the previous frame's are used, as dense_flow does,
so the warp flow there is zero, not an artefact.

A homography that moves no pixel by more than half a quantisation step (bound / 255 px)
counts as identity: the warp could not change a stored value, so the second pass is skipped.

Motion maps: the course's `mmaps` came from iDT trajectories with the camera removed, by a
recipe nobody published. Ours is an approximation: the warp flow's magnitude, smoothed, on
a scale where the loader's 0.4 threshold means "moves more than MOVING_PX = 1 px per frame".
1 px is where iDT tells a trajectory from camera motion: one that never moves more than
about 1 px a frame once the camera is removed is dropped. (Measured on the synthetic
moving square at 64x48 and 256x192, 1 px gave the best overlap with the true mask of
0.5, 1 and 2 px, and of a threshold scaled with the frame size.) Like iDT's, a map marks
the pixels of the earlier frame of its pair; its edges spread by the flow's smoothing.

Threads: OpenCV parallelises DIS, TV-L1 and the warps over all cores by default. The
ingest runs one video per process; a caller that starts one process per core should call
`cv2.setNumThreads(1)` in each (a process-wide setting, so it is the caller's to make).
"""
from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

FLOW_METHODS = ("dis", "tvl1", "farneback")
MOVING_PX = 1.0           # px per frame that the loader's 0.4 threshold stands for
REFERENCE_SIDE = 256      # the reference's shorter side; the match window and RANSAC threshold scale from it
MAP_THRESHOLD = 0.4       # the loader binarises maps at this grey level (0..1)
MATCH_WINDOW_PX = 25      # ORB matches farther apart than this are not the camera (dense_flow: 25)
MIN_POINTS, MIN_INLIERS = 50, 25   # dense_flow: fit with > 50 point pairs, keep with > 25 inliers
RANSAC_PX = 1.0           # dense_flow's, at the reference size; scaled down for smaller frames (to 0.25 px)
BORDER_PX = 5             # warped pixels this close to the frame's edge come from the previous frame


class PairFlow(NamedTuple):
    raw: np.ndarray                 # float32 (h, w, 2) px, first pass: camera and scene
    flow: np.ndarray                # the warp flow (raw when warp is off)
    homography: np.ndarray | None   # 3x3, prev -> next coordinates; None: identity / too few inliers


def grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


class _Frame:
    """A frame's grey levels and ORB features, found once though the frame is in two pairs."""

    def __init__(self, rgb: np.ndarray):
        self.rgb, self.grey = rgb, grey(rgb)
        self.orb: tuple[tuple, np.ndarray | None] | None = None


class FlowEngine:
    """One per video: holds the OpenCV flow object and the last frame's grey levels and
    features, which the next pair reuses (frame k is the `next` of pair k-1 and the `prev`
    of pair k)."""

    def __init__(self, method: str = "dis", bound: float = 20.0, warp: bool = True):
        if method not in FLOW_METHODS:
            raise ValueError(f"flow method {method!r} is not one of {', '.join(FLOW_METHODS)}")
        self.method, self.bound, self.warp = method, float(bound), warp
        if method == "dis":
            self._algo = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        elif method == "tvl1":
            self._algo = cv2.optflow.DualTVL1OpticalFlow_create()  # OpenCV's defaults, as dense_flow's
        # 200 features: matching costs grow with their square, and the flow's corners are most of the points
        self._orb = cv2.ORB_create(nfeatures=200)
        self._matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
        self._last: _Frame | None = None
        self._grid: np.ndarray | None = None

    def calc(self, prev_grey: np.ndarray, next_grey: np.ndarray) -> np.ndarray:
        """The bare OpenCV call: float32 (h, w, 2) flow in px from prev to next."""
        if self.method == "farneback":
            # OpenCV's sample parameters: pyramid 0.5 x 3 levels, 15 px window, 3 iterations, poly 5 / 1.2
            return cv2.calcOpticalFlowFarneback(prev_grey, next_grey, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        return self._algo.calc(prev_grey, next_grey, None)

    def _frame(self, rgb: np.ndarray) -> _Frame:
        return self._last if self._last is not None and self._last.rgb is rgb else _Frame(rgb)

    def pair(self, prev_rgb: np.ndarray, next_rgb: np.ndarray) -> PairFlow:
        """The flow from prev to next (RGB uint8 frames of one size)."""
        prev, nxt = self._frame(prev_rgb), self._frame(next_rgb)
        self._last = nxt
        raw = self.calc(prev.grey, nxt.grey)
        if not self.warp:
            return PairFlow(raw, raw, None)
        h = self._homography(prev, nxt, raw)
        if h is None or _largest_shift(h, prev.grey.shape) < self.bound / 255:
            return PairFlow(raw, raw, None)
        return PairFlow(raw, self.calc(prev.grey, self.warped(prev.grey, nxt.grey, h)), h)

    def _homography(self, prev: _Frame, nxt: _Frame, raw: np.ndarray) -> np.ndarray | None:
        """prev -> next camera motion, fitted to ORB matches and corners moved by the raw flow."""
        src, dst = self._matches(prev, nxt)
        moved_src, moved_dst = _moved_corners(prev.grey, raw)
        return self._fit(src + moved_src, dst + moved_dst, prev.grey.shape)

    def _fit(self, src: list, dst: list, shape: tuple[int, ...]) -> np.ndarray | None:
        if len(src) <= MIN_POINTS:
            return None
        # 1 px on a 64 px frame is 4 px on the reference's: object points near the edges, where the flow is
        # smoothed, would pass as inliers and bend the fit
        threshold = RANSAC_PX * min(1.0, max(0.25, min(shape) / REFERENCE_SIDE))
        h, inliers = cv2.findHomography(np.float32(src), np.float32(dst), cv2.RANSAC, threshold)
        return h if h is not None and int(inliers.sum()) > MIN_INLIERS else None

    def _matches(self, prev: _Frame, nxt: _Frame) -> tuple[list, list]:
        """ORB matches less than the window apart (dense_flow: SURF within 25 px)."""
        for frame in (prev, nxt):
            if frame.orb is None:
                frame.orb = self._orb.detectAndCompute(frame.grey, None)
        (prev_kp, prev_desc), (next_kp, next_desc) = prev.orb, nxt.orb
        if prev_desc is None or next_desc is None:
            return [], []
        window = MATCH_WINDOW_PX * max(1.0, min(prev.grey.shape) / REFERENCE_SIDE)
        src, dst = [], []
        for m in self._matcher.match(prev_desc, next_desc):
            a, b = prev_kp[m.queryIdx].pt, next_kp[m.trainIdx].pt
            if abs(a[0] - b[0]) < window and abs(a[1] - b[1]) < window:
                src.append(a)
                dst.append(b)
        return src, dst

    def warped(self, prev_g: np.ndarray, next_g: np.ndarray, h: np.ndarray) -> np.ndarray:
        """next resampled at H(x) for every x of prev: the camera's motion undone."""
        rows, cols = prev_g.shape
        warped = cv2.warpPerspective(next_g, h, (cols, rows), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        if self._grid is None or self._grid.shape[1:] != (rows, cols):
            yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
            self._grid = np.stack([xx, yy, np.ones_like(xx)])
        mapped = np.tensordot(h.astype(np.float32), self._grid, axes=1)
        x, y = mapped[0] / mapped[2], mapped[1] / mapped[2]
        inside = (x > BORDER_PX) & (x < cols - 1 - BORDER_PX) & (y > BORDER_PX) & (y < rows - 1 - BORDER_PX)
        return np.where(inside, warped, prev_g)


def _moved_corners(prev_g: np.ndarray, raw: np.ndarray) -> tuple[list, list]:
    """Up to 1000 corners of prev and where the raw flow takes them (as dense_flow and iDT)."""
    corners = cv2.goodFeaturesToTrack(prev_g, 1000, 0.001, 3)
    if corners is None:
        return [], []
    pts = corners.reshape(-1, 2)
    ix = np.clip(np.rint(pts).astype(int), 0, [prev_g.shape[1] - 1, prev_g.shape[0] - 1])
    return list(pts), list(pts + raw[ix[:, 1], ix[:, 0]])


def _largest_shift(h: np.ndarray, shape: tuple[int, ...]) -> float:
    """How far the homography moves the frame's farthest-moved corner, in px."""
    rows, cols = shape[:2]
    corners = np.float64([[0, 0], [cols - 1, 0], [0, rows - 1], [cols - 1, rows - 1]]).reshape(-1, 1, 2)
    return float(np.abs(cv2.perspectiveTransform(corners, h) - corners).max())


def quantise(flow: np.ndarray, bound: float) -> tuple[np.ndarray, np.ndarray]:
    """Each component as 255 * (v + bound) / (2 * bound), rounded and clipped (128: no motion),
    as dense_flow stores them."""
    q = np.clip(np.rint((flow + bound) * (255.0 / (2 * bound))), 0, 255).astype(np.uint8)
    return q[..., 0], q[..., 1]


def dequantise(x: np.ndarray, y: np.ndarray, bound: float) -> np.ndarray:
    """Stored flow images back to px (h, w, 2), to within the quantisation step."""
    return np.stack([x, y], -1).astype(np.float32) * (2 * bound / 255.0) - bound


def motion_map(flow: np.ndarray, *, moving_px: float = MOVING_PX) -> np.ndarray:
    """Grey uint8 (h, w): where the scene moves. The warp flow's magnitude, smoothed over
    a few px (blocks that move together, not single noisy pixels), scaled so that grey level
    0.4 (the loader's threshold) is `moving_px` px per frame; saturates at 2.5x that."""
    side = min(flow.shape[:2])
    magnitude = np.sqrt(flow[..., 0] ** 2 + flow[..., 1] ** 2)
    magnitude = cv2.GaussianBlur(magnitude, (0, 0), max(1.0, side / 64))
    return np.clip(np.rint(magnitude * (255 * MAP_THRESHOLD / moving_px)), 0, 255).astype(np.uint8)


def _wheel() -> np.ndarray:
    """Baker et al.'s (Middlebury) 55 hues: red, yellow, green, cyan, blue, magenta, red."""
    steps = (15, 6, 4, 11, 13, 6)   # RY YG GC CB BM MR: more hues where the eye tells them apart
    corners = np.array([[255, 0, 0], [255, 255, 0], [0, 255, 0], [0, 255, 255], [0, 0, 255], [255, 0, 255],
                        [255, 0, 0]], float)
    return np.concatenate([corners[i] + np.linspace(0, 1, n, endpoint=False)[:, None] * (corners[i + 1] - corners[i])
                           for i, n in enumerate(steps)])


_WHEEL = _wheel()


def colour_wheel(flow: np.ndarray, bound: float) -> np.ndarray:
    """RGB uint8 (h, w, 3): hue is the direction, saturation the speed (white: still, full
    colour at `bound` px, darker beyond it), as in the Middlebury flow pictures."""
    u, v = flow[..., 0] / bound, flow[..., 1] / bound
    rad = np.sqrt(u ** 2 + v ** 2)
    angle = np.arctan2(-v, -u) / np.pi                   # -1..1, both ends pointing right: red
    fk = (angle + 1) / 2 * len(_WHEEL)
    k0 = np.floor(fk).astype(int) % len(_WHEEL)
    k1 = (k0 + 1) % len(_WHEEL)
    f = (fk - np.floor(fk))[..., None]
    col = ((1 - f) * _WHEEL[k0] + f * _WHEEL[k1]) / 255
    r = rad[..., None]
    col = np.where(r <= 1, 1 - r * (1 - col), col * 0.75)
    return np.clip(np.rint(col * 255), 0, 255).astype(np.uint8)
