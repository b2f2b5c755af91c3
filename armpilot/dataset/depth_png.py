"""Lossless 16-bit grayscale PNG for depth images in millimetres (numpy + zlib only).

Depth goes into the frames Parquet as a LeRobot ``image`` feature (struct of
``bytes`` + ``path``) holding a standard PNG, so any PNG reader (Pillow,
OpenCV, browsers) returns the exact uint16 millimetres. Rows use PNG filter 2
("Up"), which suits smooth depth.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def encode_depth_png(depth: np.ndarray, level: int = 6) -> bytes:
    """(H, W) uint16 millimetres -> PNG bytes (16-bit grayscale, lossless)."""
    depth = np.asarray(depth)
    if depth.ndim != 2 or depth.dtype != np.uint16:
        raise ValueError(f"depth must be (H, W) uint16, got {depth.shape} {depth.dtype}")
    h, w = depth.shape
    rows = depth.astype(">u2").view(np.uint8).reshape(h, 2 * w)
    filtered = np.empty((h, 2 * w + 1), np.uint8)
    filtered[:, 0] = 2
    filtered[:, 1:] = rows
    filtered[1:, 1:] -= rows[:-1]  # "Up": byte minus the byte above, mod 256
    header = struct.pack(">IIBBBBB", w, h, 16, 0, 0, 0, 0)
    return (_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(filtered.tobytes(), level))
            + _chunk(b"IEND", b""))


def decode_depth_png(data: bytes) -> np.ndarray:
    """PNG bytes -> (H, W) uint16. Fast path for 16-bit gray PNGs with None/Sub/Up
    filters (what ``encode_depth_png`` writes); other PNGs go through Pillow."""
    if data[:8] != _SIGNATURE:
        raise ValueError("not a PNG")
    pos, idat, header = 8, [], b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        tag, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if tag == b"IHDR":
            header = body
        elif tag == b"IDAT":
            idat.append(body)
        pos += 12 + length
    w, h, bits, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8).reshape(h, 2 * w + 1)
    if bits != 16 or color != 0 or interlace or not set(np.unique(raw[:, 0]).tolist()) <= {0, 1, 2}:
        return _decode_with_pillow(data)
    out = raw[:, 1:].copy()
    for y in range(h):
        kind = raw[y, 0]
        if kind == 1:  # Sub: cumulative sum over pixels, per byte lane
            out[y] = np.cumsum(out[y].reshape(w, 2), axis=0, dtype=np.uint8).reshape(-1)
        elif kind == 2 and y > 0:
            out[y] += out[y - 1]
    return out.view(">u2").reshape(h, w).astype(np.uint16)


def _decode_with_pillow(data: bytes) -> np.ndarray:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img, dtype=np.uint16)
