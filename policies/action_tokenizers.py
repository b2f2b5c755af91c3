"""Action tokenisers for VLA backends (numpy + scipy, no ROS, no torch).

- ``BinningTokenizer`` (RT-2 / OpenVLA): every action dimension of every step
  is clipped to its dataset range [low, high] and cut into ``bins`` uniform
  bins; a chunk (H, A) becomes H * A tokens in 0..bins-1.
- ``DCTTokenizer`` (FAST-like, Pertsch et al. 2025): each dimension is scaled
  to [-1, 1], transformed along time with an orthonormal DCT-II, the
  coefficients are multiplied by ``scale`` and rounded; the integer matrix is
  flattened low frequency first (all dimensions of coefficient 0, then of 1,
  ...), trailing zeros are dropped and each integer becomes one token
  (zig-zag mapped to 0..vocab-1, values beyond ``max_abs`` clipped). Smooth
  chunks compress to a few tokens. FAST follows this with BPE; a plain
  integer vocabulary keeps decoding exact and dependency-free here.

Both are exact on their own output: ``encode(decode(t)) == t`` for any
tokens ``t`` they produce; ``decode(encode(x))`` is within half a bin
(binning) or the rounding error of the scaled DCT (DCT) of ``x``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
from scipy.fft import dct, idct


#: Ranges narrower than this (in the dimension's unit) are constant.
MIN_RANGE = 1e-6


@dataclass(frozen=True)
class BinningTokenizer:
    """Uniform per-dimension bins. low/high: (A,) dataset range (e.g. min/max or 1st/99th percentile)."""

    low: tuple[float, ...]
    high: tuple[float, ...]
    bins: int = 256

    @property
    def vocab_size(self) -> int:
        return self.bins

    def _range(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(low, high, constant): a dimension narrower than ``MIN_RANGE`` is constant (widened to it)."""
        low, high = np.asarray(self.low, float), np.asarray(self.high, float)
        constant = high - low < MIN_RANGE
        return low, np.where(constant, low + MIN_RANGE, high), constant

    def encode(self, chunk: np.ndarray) -> np.ndarray:
        """(H, A) actions -> (H * A,) int64 tokens, row-major (step, dimension). A constant dimension (a joint
        that never moved in the data) always takes the middle bin: float32 data against a float64 reading
        must not flip it to an extreme bin."""
        low, high, constant = self._range()
        unit = np.where(constant, 0.5, (np.clip(chunk, low, high) - low) / (high - low))
        return np.minimum((unit * self.bins).astype(np.int64), self.bins - 1).reshape(-1)

    def decode(self, tokens: np.ndarray, horizon: int) -> np.ndarray:
        """(H * A,) tokens -> (H, A) bin centres. Raises ValueError on a wrong count or an out-of-range token."""
        tokens = np.asarray(tokens, np.int64)
        low, high, _ = self._range()
        if tokens.size != horizon * low.size:
            raise ValueError(f"{tokens.size} tokens for a {horizon} x {low.size} chunk")
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.bins):
            raise ValueError(f"token outside 0..{self.bins - 1}")
        centres = (tokens.reshape(horizon, low.size) + 0.5) / self.bins
        return low + centres * (high - low)

    def to_json(self) -> str:
        return json.dumps({"type": "binning", **asdict(self)})


@dataclass(frozen=True)
class DCTTokenizer:
    """DCT along time + scaled rounding (see module doc). low/high: (A,) dataset range."""

    low: tuple[float, ...]
    high: tuple[float, ...]
    scale: float = 100.0
    max_abs: int = 1023

    @property
    def vocab_size(self) -> int:
        return 2 * self.max_abs + 1

    def _normalise(self, chunk: np.ndarray) -> np.ndarray:
        low, high = np.asarray(self.low, float), np.asarray(self.high, float)
        return 2 * (chunk - low) / np.maximum(high - low, 1e-9) - 1

    def _denormalise(self, unit: np.ndarray) -> np.ndarray:
        low, high = np.asarray(self.low, float), np.asarray(self.high, float)
        return (unit + 1) / 2 * np.maximum(high - low, 1e-9) + low

    def coefficients(self, chunk: np.ndarray) -> np.ndarray:
        """(H, A) -> (H, A) integer DCT coefficients (frequency, dimension)."""
        scaled = np.round(dct(self._normalise(chunk), axis=0, norm="ortho") * self.scale)
        return np.clip(scaled, -self.max_abs, self.max_abs).astype(np.int64)

    def encode(self, chunk: np.ndarray) -> np.ndarray:
        """(H, A) actions -> (n,) int64 tokens, n <= H * A (trailing zero coefficients dropped)."""
        flat = self.coefficients(chunk).reshape(-1)  # frequency-major: coefficient 0 of every dimension first
        nonzero = np.flatnonzero(flat)
        flat = flat[: nonzero[-1] + 1] if nonzero.size else flat[:0]
        return np.where(flat >= 0, 2 * flat, -2 * flat - 1)  # zig-zag: 0, -1, 1, -2, 2 ... -> 0, 1, 2, 3, 4 ...

    def decode(self, tokens: np.ndarray, horizon: int) -> np.ndarray:
        """(n,) tokens -> (H, A) actions. Raises ValueError on too many or out-of-range tokens."""
        tokens = np.asarray(tokens, np.int64)
        dims = len(self.low)
        if tokens.size > horizon * dims:
            raise ValueError(f"{tokens.size} tokens for a {horizon} x {dims} chunk")
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
            raise ValueError(f"token outside 0..{self.vocab_size - 1}")
        values = np.where(tokens % 2 == 0, tokens // 2, -(tokens + 1) // 2)
        flat = np.zeros(horizon * dims)
        flat[: values.size] = values
        unit = idct(flat.reshape(horizon, dims) / self.scale, axis=0, norm="ortho")
        return self._denormalise(unit)

    def to_json(self) -> str:
        return json.dumps({"type": "dct", **asdict(self)})


def tokenizer_from_json(text: str) -> BinningTokenizer | DCTTokenizer:
    """Rebuild a tokenizer saved with ``to_json``."""
    raw = json.loads(text)
    kind = raw.pop("type")
    raw["low"], raw["high"] = tuple(raw["low"]), tuple(raw["high"])
    if kind == "binning":
        return BinningTokenizer(**raw)
    if kind == "dct":
        return DCTTokenizer(**raw)
    raise ValueError(f"unknown tokenizer type {kind!r}")
