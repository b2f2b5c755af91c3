"""Benchmark diffusion-policy chunk latency: samplers side by side on the same network, N=1 and N=16.

One process, one network (a checkpoint, or the default configuration with
random weights: latency does not depend on the weights), ``torch`` threads as
the policy node uses them (``--threads``, default 1). Each row times
``DiffusionPolicy.sample_candidates`` (observation -> N timed joint chunks,
everything the node's inference thread does) with ``time.perf_counter`` after
a warm-up; p50 over ``--repeats`` calls, ms; N=1 and N=16 calls alternate, so
a busy spell on the machine slows both alike.

Samplers: ``ddpm100`` (the training chain, baseline), ``ddim16``, ``ddim10``,
``dpm3`` (DPM-Solver++, 3 steps) and ``streaming`` (warm start, 3 of 10 DDIM
steps). Ratios: each sampler's speed-up over DDPM-100, and N=16 / N=1; and
dpm3 at N=16 with the U-Net's im2col convolutions against the oneDNN
convolutions it replaces for batches (``dpm3_n16_im2col_speedup``).
Targets (ARCHITECTURE.md): dpm3 <= 15 ms, ddim10 <= 40 ms, N=16 <= 2x N=1.

    python bench/policy.py                         # table
    python bench/policy.py --checkpoint checkpoints/diffusion_reach --json
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from figures import print_figures  # bench/ is on sys.path when run as a script
from armpilot.policies import diffusion_unet
from armpilot.policies.base import Observation
from armpilot.policies.diffusion import DiffusionPolicy
from armpilot.policies.diffusion_checkpoint import read_meta, save_policy
from armpilot.policies.diffusion_config import ACTION, GOAL, OBJECT, STATE, DiffusionConfig
from armpilot.policies.diffusion_model import DiffusionModel

SAMPLERS = {"ddpm100": ("ddpm", 100), "ddim16": ("ddim", 16), "ddim10": ("ddim", 10), "dpm3": ("dpm", 3),
            "streaming": ("streaming", 10)}
TARGETS_MS = {"dpm3": 15.0, "ddim10": 40.0}


def random_checkpoint(folder: Path, camera: int = 0) -> Path:
    """The default network with random weights and unit statistics (with ``camera`` > 0: plus one camera
    of ``camera`` x ``camera`` px through the image encoder)."""
    from armpilot.features import COLOR
    from armpilot.robot import CONTROLLED_JOINTS

    config = DiffusionConfig(joint_names=CONTROLLED_JOINTS)
    if camera:
        config = DiffusionConfig(joint_names=CONTROLLED_JOINTS, image_keys=(COLOR,), image_size=camera,
                                 image_crop=round(camera * 0.875))

    def unit(d: int) -> dict[str, torch.Tensor]:
        return {"min": -torch.ones(d), "max": torch.ones(d), "mean": torch.zeros(d), "std": torch.ones(d)}

    stats = {STATE: unit(7), OBJECT: unit(7), GOAL: unit(3), ACTION: unit(7)}
    save_policy(folder, DiffusionModel(config, stats), stats, {"note": "random weights for benchmarking"})
    return folder


#: A 640x480 camera frame and a 512-point cloud, for checkpoints that see (the others ignore them): the
#: resize to the checkpoint's image size is part of what is timed, as in the policy node.
FRAME = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
CLOUD = np.random.default_rng(1).uniform([0.3, -0.2, 0.0], [0.6, 0.2, 0.1], (512, 3)).astype(np.float32)


def observation(stamp: float, joints: tuple[str, ...]) -> Observation:
    q = np.array([0.0, -0.3, 1.6, 0.0, 1.2, 0.0, 0.04])  # the home pose
    obj = np.array([0.45, 0.05, 0.05])
    now = Observation(stamp, joints, q, obj, 0.0, obj)
    return Observation(stamp, joints, q, obj, 0.0, obj, (now,), FRAME, CLOUD)


def time_policy(policy: DiffusionPolicy, sizes: tuple[int, ...], repeats: int) -> dict[int, np.ndarray]:
    """Per-call ms of ``sample_candidates`` for each N in ``sizes``, calls interleaved (N=1, N=16, N=1, ...)
    so that load on the machine hits every N alike (streaming: each call warm-starts from the previous)."""
    joints = policy.config.joint_names
    for k, n in enumerate(sizes * 2):
        policy.sample_candidates(observation(0.2 * k, joints), n)
    times: dict[int, list[float]] = {n: [] for n in sizes}
    for k in range(repeats):
        for j, n in enumerate(sizes):
            started = time.perf_counter()
            policy.sample_candidates(observation(1.0 + 0.2 * (k * len(sizes) + j), joints), n)  # numpy: synchronised
            times[n].append(1e3 * (time.perf_counter() - started))
    return {n: np.asarray(t) for n, t in times.items()}


def run(checkpoint: Path, threads: int, repeats: int, device: str = "cpu") -> dict[str, Any]:
    torch.set_num_threads(threads)
    figures: dict[str, Any] = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
                               "threads": threads, "checkpoint": str(checkpoint)}
    p50 = {}
    for name, (sampler, steps) in SAMPLERS.items():
        joints = tuple(read_meta(checkpoint)["config"].joint_names)
        policy = DiffusionPolicy(checkpoint, joints, 10, 0.1, sampler, steps, device=device)
        figures.setdefault("parameters", sum(p.numel() for p in policy.model.parameters()))
        runs = max(3, repeats // 10) if sampler == "ddpm" else repeats
        for n, ms in time_policy(policy, (1, 16), runs).items():
            p50[name, n] = float(np.percentile(ms, 50))
            figures[f"{name}_n{n}_p50_ms"] = p50[name, n]
            figures[f"{name}_n{n}_p99_ms"] = float(np.percentile(ms, 99))
    for name in SAMPLERS:
        figures[f"{name}_speedup_vs_ddpm100"] = p50["ddpm100", 1] / p50[name, 1]
        figures[f"{name}_n16_over_n1"] = p50[name, 16] / p50[name, 1]
    for name, target in TARGETS_MS.items():
        figures[f"{name}_meets_{target:.0f}ms"] = p50[name, 1] <= target
    figures["n16_over_n1"] = figures["dpm3_n16_over_n1"]  # the default sampler (dpm, 3 steps)
    figures.update(im2col_versus_onednn(checkpoint, repeats, device))
    figures["n16_within_2x_n1"] = all(p50[name, 16] <= 2 * p50[name, 1] for name in ("dpm3", "ddim10"))
    return figures


def im2col_versus_onednn(checkpoint: Path, repeats: int, device: str) -> dict[str, float]:
    """dpm3 at N=16 with the U-Net's im2col convolutions (``TemporalConv``) against the oneDNN baseline,
    calls interleaved (one each way per repeat) so that load on the machine hits both alike."""
    joints = tuple(read_meta(checkpoint)["config"].joint_names)
    policy = DiffusionPolicy(checkpoint, joints, 10, 0.1, "dpm", 3, device=device)
    default, times = diffusion_unet.GEMM_MIN_BATCH, {"onednn": [], "im2col": []}
    try:
        for _ in range(max(3, repeats)):
            for path, min_batch in (("onednn", 10**9), ("im2col", default)):  # 10**9: every batch via nn.Conv1d
                diffusion_unet.GEMM_MIN_BATCH = min_batch
                times[path].append(float(time_policy(policy, (16,), 1)[16][0]))
    finally:
        diffusion_unet.GEMM_MIN_BATCH = default
    onednn, im2col = (float(np.percentile(times[p], 50)) for p in ("onednn", "im2col"))
    return {"dpm3_n16_onednn_p50_ms": onednn, "dpm3_n16_im2col_p50_ms": im2col,
            "dpm3_n16_im2col_speedup": onednn / im2col}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=None, help="checkpoint folder (default: random weights)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1, as the node)")
    parser.add_argument("--repeats", type=int, default=50, help="timed calls per row (default: 50)")
    parser.add_argument("--device", default="cpu", help="torch device: cpu | cuda (default: cpu)")
    parser.add_argument("--camera", type=int, default=0,
                        help="random weights with one camera of this size, px (e.g. 96; default: 0 = none)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or random_checkpoint(Path(tmp) / "random", args.camera)
        print_figures(run(checkpoint, args.threads, args.repeats, args.device), args.json)


if __name__ == "__main__":
    main()
