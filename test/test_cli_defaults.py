"""What `armpilot demo|evaluate|serve` run when the user names only the backend."""

from __future__ import annotations

import pytest

from armpilot.cli import _demo_options, parse_arguments
from armpilot.paths import shipped_vla


@pytest.mark.parametrize("command", ["demo", "evaluate"])
def test_the_vla_runs_the_language_task_with_blended_chunks_by_default(command):
    options = _demo_options(parse_arguments([command, "--policy", "vla"]))
    assert options.task == "language"
    assert options.extra_arguments["transition"] == "ensemble"
    assert shipped_vla(options.task).is_dir()  # the model it loads when no --checkpoint is given


def test_other_backends_keep_reach_and_replace_and_an_explicit_choice_wins():
    options = _demo_options(parse_arguments(["demo", "--policy", "diffusion"]))
    assert (options.task, options.extra_arguments["transition"]) == ("reach", "replace")
    options = _demo_options(parse_arguments(["demo", "--policy", "vla", "--task", "reach", "--transition", "replace"]))
    assert (options.task, options.extra_arguments["transition"]) == ("reach", "replace")
    assert parse_arguments(["serve", "--backend", "vla"]).task == "language"


def test_sim_speed_reaches_the_sims_real_time_factor_and_must_be_positive(capsys):
    assert _demo_options(parse_arguments(["evaluate"])).extra_arguments["real_time_factor"] == "1.0"
    options = _demo_options(parse_arguments(["evaluate", "--sim-speed", "0.5"]))
    assert options.extra_arguments["real_time_factor"] == "0.5"
    for bad in ("0", "-1"):
        with pytest.raises(SystemExit):
            parse_arguments(["demo", "--sim-speed", bad])
        assert "--sim-speed: must be > 0" in capsys.readouterr().err
