"""``armpilot train-scorer``: demonstrations from the scripted experts -> a learned chunk scorer."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from armpilot.robot import ArmModel
from armpilot.sim.world import SimWorld
from armpilot.tasks import get_task
from armpilot.tasks.demonstrations import collect_demonstrations
from armpilot.tasks.experts import ScriptedExpert


def held_out_accuracy(score, chunks: np.ndarray, measured: np.ndarray, seed: int) -> float:
    """Fraction of (demonstration, synthetic failure) pairs the scorer ranks the right way round."""
    from armpilot.policies.scorer import make_negatives

    negatives = make_negatives(chunks, measured, np.random.default_rng(seed + 1))
    right = [score(c[None], m)[0] > score(n[None], m)[0] for c, n, m in zip(chunks, negatives, measured)]
    return float(np.mean(right))


def train_scorer_command(task: str, episodes: int, epochs: int, output: Path, seed: int) -> dict:
    """Collect, train, evaluate on held-out episodes, save weights, a loss plot and a JSON report."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from armpilot.policies.scorer import ScorerConfig, as_verifier_scorer, save_scorer, train_scorer

    started = time.monotonic()
    arm = ArmModel()
    world = SimWorld(None, get_task(task), render=False)
    expert = ScriptedExpert(arm, get_task(task))
    bar = lambda items: tqdm(items, desc="demonstrations", unit="ep")  # noqa: E731
    train_seeds = range(seed, seed + episodes)
    test_seeds = range(seed + 10_000, seed + 10_000 + max(2, episodes // 4))
    chunks, measured, rate = collect_demonstrations(world, expert, train_seeds, bar)
    test_chunks, test_measured, _ = collect_demonstrations(world, expert, test_seeds, bar)
    config = ScorerConfig(chunks.shape[1], chunks.shape[2], expert.dt, tuple(float(v) for v in arm.limits.velocity))
    model, losses = train_scorer(chunks, measured, config, epochs, seed,
                                 progress=lambda r: tqdm(r, desc="training", unit="epoch"))
    save_scorer(model, output)
    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.plot(losses)
    axis.set(xlabel="epoch", ylabel="binary cross-entropy", title=f"chunk scorer ({task})", yscale="log")
    figure.tight_layout()
    figure.savefig(output / "loss.png", dpi=100)
    report = {"task": task, "demonstrations": int(len(chunks)), "expert_success_rate": rate,
              "final_loss": losses[-1], "held_out_pairs": int(len(test_chunks)),
              "held_out_ranking_accuracy": held_out_accuracy(as_verifier_scorer(model), test_chunks, test_measured,
                                                             seed),
              "seconds": round(time.monotonic() - started, 1), "output": str(output)}
    (output / "report.json").write_text(json.dumps(report, indent=2))
    return report
