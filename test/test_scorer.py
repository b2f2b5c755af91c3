"""The learned chunk scorer: learns demonstrations vs perturbations, saves and loads without pickle."""

from __future__ import annotations

import numpy as np
import pytest

from armpilot.policies.scorer import ScorerConfig, as_verifier_scorer, load_scorer, save_scorer, train_scorer
from armpilot.scorer_training import held_out_accuracy
from armpilot.sim.world import SimWorld
from armpilot.tasks import get_task
from armpilot.tasks.demonstrations import collect_demonstrations
from armpilot.tasks.experts import ScriptedExpert


@pytest.fixture(scope="module")
def demonstrations(arm):
    world = SimWorld(None, get_task("reach"), render=False)
    expert = ScriptedExpert(arm, get_task("reach"))
    train = collect_demonstrations(world, expert, range(4))
    test = collect_demonstrations(world, expert, range(100, 102))
    return train, test


def test_scorer_ranks_demonstrations_above_perturbations(arm, demonstrations, tmp_path):
    (chunks, measured, rate), (test_chunks, test_measured, _) = demonstrations
    assert rate == 1.0 and chunks.shape[1:] == (10, 7)
    config = ScorerConfig(10, 7, 0.1, tuple(arm.limits.velocity))
    model, losses = train_scorer(chunks, measured, config, epochs=400)
    assert losses[-1] < 0.6 * losses[0]
    score = as_verifier_scorer(model)
    assert held_out_accuracy(score, test_chunks, test_measured, seed=0) >= 0.85
    save_scorer(model, tmp_path)
    loaded = as_verifier_scorer(load_scorer(tmp_path))
    assert np.allclose(loaded(test_chunks[:5], test_measured[0]), score(test_chunks[:5], test_measured[0]), atol=1e-6)
    assert loaded(test_chunks[:3, :4], test_measured[0]).shape == (3,)  # points already past: padded


def test_missing_scorer_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="scorer.safetensors"):
        load_scorer(tmp_path)
