"""Raw recordings in, the GTEA61 training layout out: decoding (video), optical flow, warp
flow and motion maps (flow), the folders and files (layout), and a picture to check them by
(preview). Torch-free: numpy, OpenCV, PyAV and PIL."""
