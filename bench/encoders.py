"""Benchmark the diffusion policy's camera encoders on this CPU, against a low-dim MLP baseline.

Times one forward pass (inference mode, centre crop) of:

* ``image``: :class:`ImageEncoder` (ResNet-18-style, GroupNorm, spatial softmax)
  on a 96x96 colour frame (84 px crop), for 1 and 16 frames;
* ``points``: :class:`PointCloudEncoder` on 512 points, for 1 and 16 clouds;
  ``points_sparse_n16``: 16 clouds of 160 valid points in 512 slots, masked (the
  randomized-push clouds fill 120-200), against ``points_n16``, every slot
  encoded, as before masked slots were skipped;
* ``keypoints``: :class:`KeypointCloudEncoder` (EdgeConv over 8 nearest neighbours,
  16 soft keypoints) on the same clouds, against ``points`` (``keypoints_over_points``);
* ``lowdim``: the two-layer MLP that embeds the low-dim observation today
  (the baseline: what a camera input adds per observation).

Each row is the median over ``--repeats`` calls, the calls of all rows
interleaved so that load drift on the machine hits them alike; ``*_n16_over_n1``
is the cost of 16 observations over one (the N=16 candidates of the verifier
share one observation, so this is the batch-of-observations cost, as in the
policy server's batching).

    python bench/encoders.py            # table
    python bench/encoders.py --json     # one JSON object of figures
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import numpy as np
import torch

from figures import print_figures  # bench/ is on sys.path when run as a script
from armpilot.policies.point_keypoints import KeypointCloudEncoder
from armpilot.policies.vision_encoders import ImageEncoder, PointCloudEncoder


def _timed(call: Callable[[], torch.Tensor]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def measure(repeats: int, threads: int) -> dict[str, float]:
    """Median milliseconds per call of each encoder at batch 1 and 16, interleaved."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    image, points, keypoints = ImageEncoder().eval(), PointCloudEncoder().eval(), KeypointCloudEncoder().eval()
    lowdim = torch.nn.Sequential(torch.nn.Linear(2 * 17, 256), torch.nn.Mish(), torch.nn.Linear(256, 256)).eval()
    inputs = {batch: (torch.rand(batch, 3, 96, 96), torch.rand(batch, 512, 3), torch.rand(batch, 34))
              for batch in (1, 16)}
    calls = {}
    for batch, (frames, clouds, low) in inputs.items():
        calls[f"image_n{batch}"] = lambda f=frames: image(f)
        calls[f"points_n{batch}"] = lambda c=clouds: points(c)
        calls[f"keypoints_n{batch}"] = lambda c=clouds: keypoints(c)
        calls[f"lowdim_n{batch}"] = lambda x=low: lowdim(x)
    sparse = torch.zeros(16, 512, dtype=torch.bool)
    sparse[:, :160] = True
    calls["points_sparse_n16"] = lambda c=inputs[16][1]: points(c, sparse)
    calls["keypoints_sparse_n16"] = lambda c=inputs[16][1]: keypoints(c, sparse)
    times: dict[str, list[float]] = {name: [] for name in calls}
    with torch.inference_mode():
        for name, call in calls.items():  # warm-up
            call()
        for _ in range(repeats):
            for name, call in calls.items():
                times[name].append(_timed(call))
    figures = {f"{name}_ms": 1e3 * float(np.median(t)) for name, t in times.items()}
    for kind in ("image", "points", "keypoints", "lowdim"):
        figures[f"{kind}_n16_over_n1"] = figures[f"{kind}_n16_ms"] / figures[f"{kind}_n1_ms"]
    figures["points_sparse_over_full_n16"] = figures["points_sparse_n16_ms"] / figures["points_n16_ms"]
    for rows in ("n1", "n16", "sparse_n16"):
        figures[f"keypoints_over_points_{rows}"] = figures[f"keypoints_{rows}_ms"] / figures[f"points_{rows}_ms"]
    figures["image_over_lowdim_n1"] = figures["image_n1_ms"] / figures["lowdim_n1_ms"]
    figures["image_parameters_M"] = sum(p.numel() for p in image.parameters()) / 1e6
    figures["points_parameters_M"] = sum(p.numel() for p in points.parameters()) / 1e6
    figures["keypoints_parameters_M"] = sum(p.numel() for p in keypoints.parameters()) / 1e6
    figures["threads"] = threads
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=50, help="timed calls per row (default 50)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the policy node)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    print_figures(measure(args.repeats, args.threads), args.json)


if __name__ == "__main__":
    main()
