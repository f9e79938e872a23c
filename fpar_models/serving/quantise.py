"""NNCF post-training quantisation of a serving graph, as its own process (see
fpar_models.serving.precision.quantise, which runs it):

    python -m fpar_models.serving.quantise serving.onnx calibration.npz serving-int8.xml

The calibration clips are the arrays of the npz, named as the graph's inputs; each clip is
one calibration step. The int8 model is written atomically (weights kept in full where they
are not quantised).
"""
from __future__ import annotations

import sys
from pathlib import Path

import nncf
import numpy as np
import openvino as ov

from fpar_models.files import atomic_path


def quantise(graph: Path, calibration: Path, out: Path) -> None:
    with np.load(calibration) as arrays:
        inputs = {name: arrays[name] for name in arrays.files}
    count = len(next(iter(inputs.values())))
    clips = [{name: array[i:i + 1] for name, array in inputs.items()} for i in range(count)]
    quantised = nncf.quantize(ov.Core().read_model(str(graph)), nncf.Dataset(clips), subset_size=count)
    with atomic_path(out, siblings=(".bin",)) as partial:  # the weights file beside the .xml
        ov.save_model(quantised, str(partial), compress_to_fp16=False)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    quantise(*map(Path, sys.argv[1:]))
