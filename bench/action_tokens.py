"""Benchmark the action tokenisers on recorded demonstrations: tokens per chunk and reconstruction error.

Every ``--stride``-th frame of a LeRobotDataset v3 gives one 16 x J action
chunk (the training chunk). For the binning tokenizer (baseline, 256 bins)
and the DCT tokenizer at several scales: mean tokens per chunk, the ratio to
binning, arm-joint reconstruction error (max over the chunk, p50 / p99, rad),
encode + decode time per chunk (ms) and the share of chunks whose tokens
survive decode -> encode unchanged (must be 1).

    python bench/action_tokens.py --dataset out/dataset
    python bench/action_tokens.py --dataset out/dataset --json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from figures import print_figures  # bench/ is on sys.path when run as a script
from armpilot.dataset.loader import LeRobotV3Dataset
from armpilot.policies.action_tokenizers import BinningTokenizer, DCTTokenizer


def evaluate(tokenizer, chunks: np.ndarray, arm: slice) -> dict[str, float]:
    lengths, errors, exact = [], [], 0
    started = time.perf_counter()
    for chunk in chunks:
        tokens = tokenizer.encode(chunk)
        decoded = tokenizer.decode(tokens, len(chunk))
        lengths.append(tokens.size)
        errors.append(np.abs(decoded - chunk)[:, arm].max())
        exact += int(np.array_equal(tokenizer.encode(decoded), tokens))
    ms = 1e3 * (time.perf_counter() - started) / len(chunks)
    return {"tokens": float(np.mean(lengths)), "err_p50_rad": float(np.percentile(errors, 50)),
            "err_p99_rad": float(np.percentile(errors, 99)), "ms": ms / 2, "exact": exact / len(chunks)}


def run(dataset: Path, stride: int) -> dict[str, Any]:
    data = LeRobotV3Dataset(dataset, n_obs_steps=1, horizon=16)
    chunks = np.stack([data[i]["action"].numpy() for i in range(0, len(data), stride)]).astype(float)
    stats = data.stats["action"]
    low, high = tuple(stats["min"].tolist()), tuple(stats["max"].tolist())
    arm = slice(0, chunks.shape[2] - 1)
    figures: dict[str, Any] = {"dataset": str(dataset), "chunks": len(chunks), "chunk_shape": list(chunks.shape[1:])}
    baseline = evaluate(BinningTokenizer(low, high), chunks, arm)
    for key, value in baseline.items():
        figures[f"binning256_{key}"] = value
    for scale in (25.0, 50.0, 100.0, 200.0):
        result = evaluate(DCTTokenizer(low, high, scale=scale, max_abs=1023), chunks, arm)
        name = f"dct{scale:.0f}"
        for key, value in result.items():
            figures[f"{name}_{key}"] = value
        figures[f"{name}_tokens_over_binning"] = result["tokens"] / baseline["tokens"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True, help="LeRobotDataset v3 folder")
    parser.add_argument("--stride", type=int, default=5, help="use every n-th frame (default: 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    print_figures(run(args.dataset, args.stride), args.json)


if __name__ == "__main__":
    main()
