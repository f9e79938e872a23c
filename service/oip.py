"""The Open Inference Protocol (KServe v2, Triton's HTTP API) on the wire: an inference
request's tensors from JSON or from the binary tensor data extension, and the answer in
the form the client asked for. Torch-free; the routes are in service/routes/oip.py.

Binary extension: the body is a JSON header of `Inference-Header-Content-Length` bytes,
then each tensor whose parameters carry `binary_data_size`, raw and in input order.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.errors import Problem, field_error

DATATYPES = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
             "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "FP16": np.float16,
             "FP32": np.float32, "FP64": np.float64}
HEADER_LENGTH = "Inference-Header-Content-Length"


@dataclass
class InferRequest:
    tensors: dict[str, np.ndarray]
    id: str | None = None
    binary_outputs: set[str] = field(default_factory=set)  # outputs asked for as raw bytes
    outputs: list[str] | None = None                        # None: every output


def parse(body: bytes, header_length: str | None) -> InferRequest:
    """The request's tensors; a 422 names the input (by its index) that is malformed."""
    try:
        size = int(header_length) if header_length is not None else len(body)
        if not 0 < size <= len(body):
            raise ValueError
    except ValueError:
        raise Problem(400, f"{HEADER_LENGTH} must be the JSON header's length in bytes "
                      f"(1 to {len(body)}), not '{header_length}'") from None
    try:
        header = json.loads(body[:size])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Problem(400, f"the inference request is not JSON: {e}") from None
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list) or not header["inputs"]:
        raise field_error(["inputs"], "a list of input tensors is required")
    offset, tensors = size, {}
    for i, spec in enumerate(header["inputs"]):
        array, used = _tensor(spec, i, body, offset)
        offset += used
        tensors[spec["name"]] = array
    if offset != len(body):
        raise Problem(400, f"{len(body) - offset} bytes after the last binary tensor")
    wanted = header.get("outputs")
    params = _parameters(header, ["parameters"])
    binary = set()
    names = None
    if isinstance(wanted, list):
        names = [str(o.get("name")) for o in wanted if isinstance(o, dict)]
        binary = {str(o.get("name")) for i, o in enumerate(wanted)
                  if isinstance(o, dict) and _parameters(o, ["outputs", i, "parameters"]).get("binary_data")}
    if params.get("binary_data_output"):
        binary = {"*"}
    return InferRequest(tensors, header.get("id"), binary, names)


def _tensor(spec: Any, i: int, body: bytes, offset: int) -> tuple[np.ndarray, int]:
    loc = ["inputs", i]
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise field_error([*loc, "name"], "each input needs a name")
    datatype, shape = spec.get("datatype"), spec.get("shape")
    if datatype not in DATATYPES:
        raise field_error([*loc, "datatype"], f"'{datatype}' is not a tensor datatype of the protocol "
                          f"({', '.join(DATATYPES)}; BYTES is not taken)")
    if not (isinstance(shape, list) and shape and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise field_error([*loc, "shape"], "a list of non-negative integers")
    dtype, count = np.dtype(DATATYPES[datatype]), math.prod(shape)  # exact: np.prod wraps around at 2**63
    size = _parameters(spec, [*loc, "parameters"]).get("binary_data_size")
    if size is not None:
        need = count * dtype.itemsize
        if not isinstance(size, int) or size != need:
            raise field_error([*loc, "parameters", "binary_data_size"],
                              f"{size!r} bytes; a {datatype} tensor of shape {shape} takes {need}")
        if offset + size > len(body):
            raise field_error([*loc, "parameters", "binary_data_size"],
                              f"{size} bytes, and the body ends before them")
        return np.frombuffer(body, dtype, count, offset).reshape(shape), size
    try:
        array = np.asarray(spec.get("data"), dtype=dtype)
    except (TypeError, ValueError, OverflowError) as e:
        raise field_error([*loc, "data"], f"not {datatype} values: {e}") from None
    if array.size != count:
        raise field_error([*loc, "data"], f"{array.size} values; shape {shape} needs {count}")
    return array.reshape(shape), 0


def _parameters(owner: dict, loc: list) -> dict:
    """The protocol's `parameters` object of a request, an input or an output ({} if none)."""
    params = owner.get("parameters")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise field_error(loc, "an object of named parameters")
    return params


def datatype(dtype: np.dtype) -> str:
    return next((name for name, t in DATATYPES.items() if np.dtype(t) == dtype), str(dtype))


def answer(model_id: str, request: InferRequest, outputs: dict[str, tuple[str, np.ndarray]]
           ) -> tuple[bytes, dict[str, str]]:
    """The response body and its headers: JSON data, or the binary extension for the
    outputs asked for that way. `outputs`: name -> (datatype, array)."""
    wanted = request.outputs if request.outputs is not None else list(outputs)
    unknown = [n for n in wanted if n not in outputs]
    if unknown:
        raise field_error(["outputs"], f"no output named {unknown}; this model has {list(outputs)}")
    described, blobs = [], []
    for name in wanted:
        datatype, array = outputs[name]
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if name in request.binary_outputs or "*" in request.binary_outputs:
            raw = np.ascontiguousarray(array).tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = array.ravel().tolist()
        described.append(entry)
    head: dict[str, Any] = {"model_name": model_id, "model_version": "1", "outputs": described}
    if request.id is not None:
        head["id"] = request.id
    header = json.dumps(head, separators=(",", ":")).encode()
    if not blobs:
        return header, {"content-type": "application/json"}
    return header + b"".join(blobs), {"content-type": "application/octet-stream", HEADER_LENGTH: str(len(header))}
