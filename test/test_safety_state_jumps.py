"""Two sources on /joint_states: consecutive arm states that one arm cannot produce are jumps; two within a
second hold the arm (from the commanded path, never toward a measured state) and refuse proposals (pure)."""

from __future__ import annotations

import numpy as np

from armpilot.rejections import Reason
from armpilot.robot import ArmModel
from armpilot.safety.state_tracking import ArmState, CommandedPath, hold_on_path, state_jump
from armpilot.safety.supervisor import Supervisor
from robot_variants import profile

ALLOWANCE = 0.1


def limits_of(name: str = "armpilot"):
    return ArmModel(profile(name)).limits


def test_moves_one_arm_can_make_are_not_jumps():
    lim = limits_of()
    q = np.zeros(len(lim.names))
    step = 0.9 * lim.velocity * 0.01  # 10 ms at 90 % of the limit
    assert state_jump(q, 1.0, q + step, 1.01, lim, ALLOWANCE) == ""
    assert state_jump(q, 1.0, q + step, 1.0, lim, ALLOWANCE) == ""  # arrived together: within the allowance


def test_a_teleport_is_a_jump_naming_the_joint_and_a_late_copy_is_not():
    lim = limits_of()
    q = np.zeros(len(lim.names))
    far = q.copy()
    far[2] = 1.6
    detail = state_jump(q, 1.0, far, 1.01, lim, ALLOWANCE)
    assert lim.names[2] in detail and "1.600" in detail
    assert state_jump(q, 1.0, q, 0.5, lim, ALLOWANCE) == "", "the same pose delivered late (a relay) is no jump"
    assert state_jump(q, 1.0, far, 0.99, lim, ALLOWANCE), "another pose delivered late is one"


def test_a_continuous_joint_read_across_pi_is_not_a_jump():
    lim = limits_of("ur5_continuous")
    k = int(np.argmax(lim.continuous))
    a, b = np.zeros(len(lim.names)), np.zeros(len(lim.names))
    a[k], b[k] = np.pi - 0.001, -np.pi + 0.001
    assert state_jump(a, 1.0, b, 1.01, lim, ALLOWANCE) == ""


def test_arm_state_reports_the_jump_of_its_latest_update_only():
    lim = limits_of()
    state = ArmState(lim.names)
    q = np.zeros(len(lim.names))
    assert state.update(lim.names, q, None, 1.0) is None and state.jump(lim, ALLOWANCE) == ""
    assert state.update(lim.names, q + 1.0, None, 1.01) is None and state.jump(lim, ALLOWANCE)
    assert state.update(lim.names, q + 1.0, None, 1.02) is None and state.jump(lim, ALLOWANCE) == ""


def test_one_jump_is_a_reset_two_within_the_window_are_two_sources():
    sup = Supervisor(proposal_timeout=0.3, joint_state_timeout=0.25)
    sup.joint_state(10.0)
    window = Supervisor.STATE_JUMP_WINDOW_S
    assert 0.1 < window < 0.4, "beyond a 10 Hz driver's period, below a short sim episode (0.4 s)"
    assert not sup.state_jumped("elbow jumped", 10.0)
    reason, detail = sup.refusal(10.05)
    assert reason == Reason.JOINT_STATE_JUMP and "consistent" in detail, "a jumped state is not checked against"
    sup.state_consistent()
    assert sup.refusal(10.05) is None, "one consistent state after it: a reset"
    assert sup.state_jumped("elbow jumped back", 10.1), "the second jump a 10 Hz driver's period later holds"
    assert not sup.state_jumped("again", 10.12), "once: the fault is already latched"
    sup.joint_state(10.12 + window / 2)
    reason, detail = sup.refusal(10.12 + window / 2)
    assert reason == Reason.JOINT_STATE_JUMP and "/joint_states" in detail and "again" in detail
    sup.joint_state(10.13 + window)
    sup.state_consistent()
    assert sup.refusal(10.13 + window) is None, "refused until a window passes without a jump"
    assert not sup.state_jumped("a reset much later", 20.0)
    assert not sup.state_jumped("the next episode's reset, 0.4 s on (a reach done that fast)", 20.4)


def test_a_hold_on_untrusted_states_follows_the_path_not_the_measured_arm():
    lim = limits_of()
    j = len(lim.names)
    on_path = np.zeros(j)
    path = CommandedPath(lim.velocity * ALLOWANCE, lim.continuous)
    path.command(1.0, 1.0, np.array([0.1, 0.2]), np.vstack([on_path, on_path]), on_path)
    state = ArmState(lim.names)
    fake = on_path.copy()
    fake[1] = 1.0  # a second publisher's state, far from where the controller is
    state.update(lim.names, fake, None, 1.05)
    trusted = hold_on_path(path, state, lim, 1.05, ALLOWANCE)
    assert np.allclose(trusted.positions[-1], fake), "a measured arm far from the path is where a hold starts"
    path.command(1.0, 1.0, np.array([0.1, 0.2]), np.vstack([on_path, on_path]), on_path)
    untrusted = hold_on_path(path, state, lim, 1.05, ALLOWANCE, trust_measured=False)
    assert np.allclose(untrusted.positions, on_path), "with two sources the hold stays on the path"
    assert hold_on_path(CommandedPath(lim.velocity * ALLOWANCE), state, lim, 1.05, ALLOWANCE,
                        trust_measured=False) is None, "no path and no trusted state: no command at all"
