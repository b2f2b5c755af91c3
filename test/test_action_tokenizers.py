"""Action tokenisers: exact round trips, bounded reconstruction error, compression of smooth chunks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from armpilot.policies.action_tokenizers import BinningTokenizer, DCTTokenizer, tokenizer_from_json

LOW = (-3.0, -2.0, -1.0, -3.0, -2.0, -3.0, 0.0)
HIGH = (3.0, 2.0, 2.5, 3.0, 2.0, 3.0, 0.04)
H = 16


def _inside(values: np.ndarray) -> np.ndarray:
    low, high = np.array(LOW), np.array(HIGH)
    return low + (np.tanh(values) + 1) / 2 * (high - low)


chunks = arrays(np.float64, (H, 7), elements=st.floats(-5, 5)).map(_inside)


@settings(max_examples=200, deadline=None)
@given(chunks)
def test_binning_round_trip(chunk):
    tok = BinningTokenizer(LOW, HIGH)
    tokens = tok.encode(chunk)
    assert tokens.shape == (H * 7,) and tokens.min() >= 0 and tokens.max() < 256
    decoded = tok.decode(tokens, H)
    half_bin = (np.array(HIGH) - np.array(LOW)) / 256 / 2
    assert np.all(np.abs(decoded - chunk) <= half_bin + 1e-9)
    assert np.array_equal(tok.encode(decoded), tokens)  # exact on its own output


def test_a_constant_dimension_takes_one_token_whatever_the_float_rounding():
    """A joint that never moved in the data (the state tokenizer's range is one float32 value): its float64
    reading must not land in an extreme bin (it did: -0.3 read as float64 took bin 255, trained as bin 0)."""
    held = float(np.float32(-0.3))
    tok = BinningTokenizer((-0.5, held), (0.5, held))
    tokens = {int(tok.encode(np.array([[0.0, value]]))[1]) for value in (held, -0.3, np.float32(-0.3), -0.2999999)}
    assert len(tokens) == 1
    assert tok.decode(tok.encode(np.array([[0.0, -0.3]])), 1)[0, 1] == pytest.approx(-0.3, abs=1e-6)


@settings(max_examples=200, deadline=None)
@given(chunks)
def test_dct_round_trip(chunk):
    tok = DCTTokenizer(LOW, HIGH)
    tokens = tok.encode(chunk)
    assert tokens.size <= H * 7 and (tokens.size == 0 or tokens.max() < tok.vocab_size)
    decoded = tok.decode(tokens, H)
    assert np.array_equal(tok.encode(decoded), tokens)
    # per coefficient the rounding error is <= 0.5 / scale (normalised units); the orthonormal inverse DCT keeps
    # the total energy, so no step of a dimension is off by more than sqrt(H) * 0.5 / scale
    bound = np.sqrt(H) * 0.5 / tok.scale * (np.array(HIGH) - np.array(LOW)) / 2
    assert np.all(np.abs(decoded - chunk) <= bound + 1e-9)


def test_smooth_chunks_compress_and_steps_do_not():
    tok = DCTTokenizer(LOW, HIGH)
    t = np.linspace(0, 1, H)[:, None]
    smooth = 0.5 * np.sin(t + np.arange(7) * 0.3) * np.array([1, 1, 1, 1, 1, 1, 0.01]) + np.array([0] * 6 + [0.02])
    noisy = smooth + np.random.default_rng(0).normal(0, 0.3, smooth.shape) * np.array([1] * 6 + [0.0])
    assert tok.encode(smooth).size < 0.5 * H * 7 < tok.encode(noisy).size


def test_bad_tokens_are_refused():
    binning, dct = BinningTokenizer(LOW, HIGH), DCTTokenizer(LOW, HIGH)
    with pytest.raises(ValueError, match="tokens for a"):
        binning.decode(np.zeros(5, int), H)
    with pytest.raises(ValueError, match="outside"):
        binning.decode(np.full(H * 7, 256), H)
    with pytest.raises(ValueError, match="outside"):
        dct.decode(np.array([dct.vocab_size]), H)


def test_json_round_trip():
    for tok in (BinningTokenizer(LOW, HIGH, bins=128), DCTTokenizer(LOW, HIGH, scale=50.0)):
        assert tokenizer_from_json(tok.to_json()) == tok
