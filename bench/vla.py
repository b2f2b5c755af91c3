"""Benchmark VLA chunk latency: two action tokenisers (binning against DCT) side by side on real frames.

Each model runs ``VLAPolicy.sample_candidates`` (prompt, KV-cached constrained
decoding, tokens -> chunk: everything the node's inference thread does) on the
same observations, frames of a LeRobotDataset v3 (camera image, joint state,
object, the episode's instruction), alternating between the two models so a
busy spell slows both alike; ``torch`` threads as the policy node (1). Reports
p50 ms per model, tokens decoded per chunk and the ratios against the first
model (the baseline).

    python bench/vla.py checkpoints/vla_language out/vla_dct --dataset out/dataset_language
    python bench/vla.py A B --dataset D --json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from figures import print_figures  # bench/ is on sys.path when run as a script
from armpilot.dataset.loader import LeRobotV3Dataset
from armpilot.policies.base import Observation
from armpilot.policies.vla import VLAPolicy
from armpilot.policies.vla_training import TASK_INSTRUCTIONS


def observations(dataset: Path, count: int, seed: int) -> list[tuple[str, Observation]]:
    """``count`` random frames as (instruction, observation)."""
    data = LeRobotV3Dataset(dataset, n_obs_steps=1, horizon=16, decode_video=True)
    names = tuple(data.info["features"]["observation.state"]["names"])
    tasks = {i: (ep.get("tasks") or ["reach"])[0] for ep in data.episodes
             for i in range(ep["dataset_from_index"], ep["dataset_to_index"])}
    out = []
    for index in np.random.default_rng(seed).choice(len(data), count, replace=False):
        item = data[int(index)]
        image = (item["observation.images.color"][-1].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        obj = item["observation.object"][-1].numpy()
        observation = Observation(0.0, names, item["observation.state"][-1].numpy().astype(float), obj[:3], 0.0,
                                  np.zeros(3), image=image)
        out.append((TASK_INSTRUCTIONS.get(tasks[int(index)], tasks[int(index)]), observation))
    return out


def decoded_tokens(policy: VLAPolicy, frames: list[tuple[str, Observation]]) -> list[int]:
    """Tokens the model decodes per chunk on ``frames`` (an untimed pass; DCT: up to and with the end token)."""
    seen: list[int] = []
    original = policy._decode

    def counting(*args, **kwargs) -> np.ndarray:
        tokens = original(*args, **kwargs)
        seen.append(tokens.shape[1])
        return tokens

    policy._decode = counting
    try:
        for instruction, observation in frames:
            policy.set_instruction(instruction)
            policy.sample_candidates(observation, 1)
    finally:
        del policy._decode
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", type=Path, nargs=2, help="two VLA folders; the first is the baseline")
    parser.add_argument("--dataset", type=Path, required=True, help="LeRobotDataset v3 the frames come from")
    parser.add_argument("--repeats", type=int, default=30, help="frames timed per model (default: 30)")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    args = parser.parse_args()
    torch.set_num_threads(1)
    frames = observations(args.dataset, args.repeats, 0)
    names = frames[0][1].joint_names
    policies = [VLAPolicy(m, names, horizon=10, chunk_dt=0.1) for m in args.models]
    counts = [decoded_tokens(policy, frames) for policy in policies]
    times = [[] for _ in policies]
    for instruction, observation in frames:
        for policy, spent in zip(policies, times):
            policy.set_instruction(instruction)
            started = time.perf_counter()
            policy.sample_candidates(observation, 1)
            spent.append(1e3 * (time.perf_counter() - started))
    figures = {}
    for model, policy, spent, count in zip(args.models, policies, times, counts):
        figures[f"{model.name}_tokenizer"] = json.loads(policy.meta["action_tokenizer"].to_json())["type"]
        figures[f"{model.name}_p50_ms"] = float(np.median(spent))
        figures[f"{model.name}_tokens_mean"] = float(np.mean(count))
    base, other = (float(np.median(t)) for t in times)
    figures["p50_ratio_second_over_first"] = other / base
    figures["tokens_ratio_second_over_first"] = float(np.mean(counts[1]) / np.mean(counts[0]))
    print_figures(figures, args.json)


if __name__ == "__main__":
    main()
