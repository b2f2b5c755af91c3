"""openpi's wire format: msgpack with numpy arrays, and nothing that can execute code.

An array travels as a map ``{"__ndarray__": True, "data": <raw bytes>,
"dtype": <numpy dtype string>, "shape": [...]}``, a numpy scalar as
``{"__npgeneric__": True, "data": <value>, "dtype": ...}`` (the layout of
openpi-client's ``msgpack_numpy``, so both ends interoperate). Object, void
and complex dtypes are refused both ways: no pickle, ever.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

ALLOWED_KINDS = "biuf"  # bool, signed, unsigned, float
#: Largest websocket message either side accepts, bytes (a 640x480 RGB observation is ~0.9 MB).
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: Most items in one msgpack list or map (arrays travel as one binary field, not as lists): a 16 MiB frame
#: of small integers would otherwise decode to ~600 MB of Python objects.
MAX_CONTAINER_LEN = 4096


class WireError(ValueError):
    """A message that is not valid openpi msgpack (bad dtype, wrong size, not a map)."""


def _check_dtype(dtype: np.dtype) -> np.dtype:
    if dtype.kind not in ALLOWED_KINDS:
        raise WireError(f"dtype {dtype.str!r} is not allowed on the wire (only bool, int, uint, float)")
    return dtype


def _encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        dtype = _check_dtype(obj.dtype)
        return {b"__ndarray__": True, b"data": np.ascontiguousarray(obj).tobytes(), b"dtype": dtype.str,
                b"shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        dtype = _check_dtype(obj.dtype)
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": dtype.str}
    raise TypeError(f"cannot send {type(obj).__name__} over the policy protocol")


def _field(obj: dict, name: str) -> Any:
    return obj[name.encode()] if name.encode() in obj else obj[name]


def _decode(obj: dict) -> Any:
    if b"__ndarray__" in obj or "__ndarray__" in obj:
        try:
            dtype = _check_dtype(np.dtype(_field(obj, "dtype")))
            shape = tuple(int(n) for n in _field(obj, "shape"))
            data = _field(obj, "data")
        except (KeyError, TypeError) as error:
            raise WireError(f"malformed array: {error}") from error
        if len(data) != dtype.itemsize * int(np.prod(shape)):
            raise WireError(f"array of shape {shape} and dtype {dtype.str} needs "
                            f"{dtype.itemsize * int(np.prod(shape))} bytes, got {len(data)}")
        return np.frombuffer(data, dtype=dtype).reshape(shape)
    if b"__npgeneric__" in obj or "__npgeneric__" in obj:
        return _check_dtype(np.dtype(_field(obj, "dtype"))).type(_field(obj, "data"))
    return obj


def packb(message: dict[str, Any]) -> bytes:
    """A dict of str -> arrays / numbers / strings / nested dicts -> msgpack bytes."""
    return msgpack.packb(message, default=_encode, use_bin_type=True)


def unpackb(data: bytes) -> dict[str, Any]:
    """msgpack bytes -> dict (arrays read-only views of the message). Raises WireError."""
    try:
        message = msgpack.unpackb(data, object_hook=_decode, raw=False, strict_map_key=False,
                                  max_array_len=MAX_CONTAINER_LEN, max_map_len=MAX_CONTAINER_LEN)
    except WireError:
        raise
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as error:
        raise WireError(f"not a msgpack message: {error}") from error
    if not isinstance(message, dict):
        raise WireError(f"expected a map, got {type(message).__name__}")
    return message
