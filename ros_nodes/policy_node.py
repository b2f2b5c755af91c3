"""Policy node: runs a policy backend and proposes timed joint chunks.

Reads ``/joint_states``, the task object from ``/perception/objects`` (or, with ``object_source:
privileged``, the sim's ground truth) and the goal from ``/policy/goal`` (``policies/episode_goal.py``:
reach and pick derive it from the object when none is given), resets the backend on each new episode
(``episodes``: each ``/sim/episode``, or ``continuous``: from start-up, a new goal begins the next), and at
``rate_hz`` publishes N candidate chunks on ``/policy/candidates`` (an N x H x J table stamped with the
observation's time, points at ``chunk_dt * (1..H)`` after it) for the safety/verifier node to choose from.
It never talks to the controller, and proposes nothing while its observation is stale (the safety node
then holds the arm). Inference runs on a worker thread, off the executor, so joint states keep arriving and
the next chunk is computed while the current one executes. A finished chunk stays anchored on its
observation's stamp: points already due are dropped, a chunk whose observation is older than
``observation_budget`` is not sent. NaN observations skip a cycle. Latency, counts: ``/diagnostics``, 1 Hz.

``transition`` decides how a new chunk takes over: ``replace``, ``ensemble`` (blended with the previous
chunk) or ``rtc`` (Real-Time Chunking: the backend inpaints the new chunk so that its frames due before it
is ready, a running high percentile of the measured latency plus ``min_lead``, equal the executing chunk).
``inject_delay_ms`` adds latency to every inference, for evaluation.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray, PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState, PointCloud2
from std_msgs.msg import Int64, String
from trajectory_msgs.msg import JointTrajectory
from transforms3d.euler import quat2euler

from armpilot.control.trajectory import STAMP_TOLERANCE
from armpilot.dataset.points_feature import decode_points_msg
from armpilot.dataset.resampler import ClockJumpError, LiveSampler
from armpilot.dataset.tracks_feature import decode_tracks_msg
from armpilot.policies.base import Observation, feed_problem, transition_problem
from armpilot.policies.chunking import blend_with_previous, drop_past_points, fit_to_limits
from armpilot.policies.workspace_fit import WorkspaceFit
from armpilot.policies.config import PolicyNodeConfig
from armpilot.policies.sensor_frames import SensorFrames
from armpilot.policies.episode_goal import EpisodeGoal
from armpilot.policies.perturbed import CandidatePerturbation, ProposerConfig
from armpilot.policies.realtime import CommittedPrefix, ExecutingChunk, InjectedDelay, LatencyTracker, fit_origin
from armpilot.policies.registry import make_policy
from armpilot.robot import ArmModel
from armpilot.ros_nodes import conversions as conv
from armpilot.ros_nodes import qos, topics
from armpilot.ros_nodes.candidate_conversions import candidates_to_msg
from armpilot.ros_nodes.lifecycle import run_node
from armpilot.ros_nodes.params import declare_config
from armpilot.ros_nodes.policy_diagnostics import policy_diagnostics
from armpilot.ros_nodes.policy_task_inputs import TaskInputs
from armpilot.ros_nodes.robot_loading import load_robot
from armpilot.safety.limits import SafetyConfig
from armpilot.safety.state_tracking import proposal_joints
from armpilot.tasks import task_for_robot


JOINTS, OBJECT = "joints", "object"


#: s: a /joint_states stamped up to this before the last one comes from another driver (an arm's and a separate
#: gripper's interleave); its values are merged and go out with the next message. Further back: a clock jump.
INTERLEAVE_S = 0.1


class PolicyNode(TaskInputs, Node):
    """Thin shell: latest observation -> backend -> JointTrajectory."""

    def __init__(self) -> None:
        super().__init__("policy")
        self.config = declare_config(self, PolicyNodeConfig)
        profile = load_robot(self)
        # chunks go out in the order asked for (the safety node reorders by name); an order given here never
        # reaches the backends, which work in their checkpoint's order (``joint_order``) or else the profile's
        self.published_joints = proposal_joints(profile, self.config.joint_names)
        self.config = cfg = replace(self.config, joint_names=profile.joints)
        self.proposer_config = declare_config(self, ProposerConfig)
        try:
            arm = ArmModel(profile)
            policy = make_policy(cfg.backend, arm, cfg.task, cfg.horizon, cfg.chunk_dt, cfg, self.proposer_config.seed)
        except ValueError as error:  # CheckpointError included: say what is wrong, then exit non-zero
            self.get_logger().fatal(f"cannot start backend '{cfg.backend}': {error}")
            raise
        # the backend's own order (a checkpoint's), else the profile's: observations in, chunks out
        self.config = cfg = replace(cfg, joint_names=policy.joint_order or profile.joints)
        self.published_columns = np.array([cfg.joint_names.index(n) for n in self.published_joints])
        problem = transition_problem(cfg.transition, cfg.backend, policy.capabilities)
        problem = (f"{problem} (checkpoint '{cfg.checkpoint or 'shipped'}')" if problem
                   else feed_problem(cfg.backend, policy, len(cfg.joint_names)))
        if problem:
            self.get_logger().fatal(problem)
            raise ValueError(problem)
        self.backend = policy
        self.latest_joints: dict[str, float] = {}  # each joint's last reading (several drivers may publish)
        self.limits = arm.limits.reordered(cfg.joint_names)  # proposals are fitted to them (fit_to_limits)
        self.workspace_fit = WorkspaceFit(arm, cfg.joint_names, self.limits) if cfg.cut_at_workspace else None
        self.perturbation = CandidatePerturbation(self.proposer_config)  # tests and demos only
        self.policy_lock = threading.Lock()
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="policy-inference")
        self.inference: object | None = None  # the running Future
        self.executing: ExecutingChunk | None = None  # the last command the safety node sent the controller
        self.latency = LatencyTracker(cfg.latency_percentile)  # observation stamp -> chunk ready, s
        self.delay = InjectedDelay(cfg.inject_delay_ms, cfg.inject_delay_jitter_ms, self.proposer_config.seed)
        self.inference_ms: deque[float] = deque(maxlen=500)
        self.counts = {"published": 0, "dropped_stale": 0, "skipped_nan": 0, "skipped_busy": 0}
        self.joints: tuple[float, np.ndarray] | None = None
        self.sampler = LiveSampler((JOINTS, OBJECT))
        self.objects_alive = float("-inf")
        self.episode_start: float | None = None
        self.goal = EpisodeGoal(task_for_robot(cfg.task, profile))
        self.base_frame = profile.base_frame
        self.episode = -1
        self.handover_episode = -1  # the episode /policy/handover named last (it may arrive before the episode)
        self.fresh_episode = False
        self.pub = self.create_publisher(PointCloud2, topics.POLICY_CANDIDATES, qos.COMMAND_QOS)
        self.create_subscription(JointState, topics.JOINT_STATES, self.on_joint_state, qos.STATE_QOS)
        privileged = cfg.object_source != "perception"
        self.object_topic = topics.SIM_PRIVILEGED_OBJECTS if privileged else topics.PERCEPTION_OBJECTS
        self.create_subscription(PoseArray, self.object_topic, self.on_objects, qos.STATE_QOS)
        if cfg.episodes == "sim":
            self.create_subscription(String, topics.SIM_EPISODE, self.on_episode, qos.LATCHED_QOS)
        else:
            self.begin_episode(0, float("-inf"), "continuous episodes from start-up")
        qos.subscribe_any_publisher(self, PoseStamped, topics.POLICY_GOAL, self.on_goal, qos.LATCHED_QOS)
        qos.subscribe_any_publisher(self, String, topics.POLICY_INSTRUCTION, self.on_instruction, qos.LATCHED_QOS)
        if policy.capabilities.hands_over:
            self.create_subscription(Int64, topics.POLICY_HANDOVER, self.on_handover, qos.COMMAND_QOS)
        if cfg.transition != "replace" or policy.capabilities.starts_at_full_speed:  # what the controller does
            self.create_subscription(JointTrajectory, topics.SAFETY_COMMANDED, self.on_commanded, qos.COMMAND_QOS)
        # the camera (VLA and camera-trained diffusion backends), the cloud and the tracks, only where needed
        needs = policy.capabilities
        sensors = [(topics.COLOR_IMAGE, Image, conv.image_from_msg)] if needs.needs_image else []
        sensors += [(topics.PERCEPTION_POINTS, PointCloud2, decode_points_msg)] if needs.needs_points else []
        sensors += [(topics.PERCEPTION_TRACKS, PointCloud2, decode_tracks_msg)] if needs.needs_tracks else []
        self.sensors = SensorFrames(tuple(topic for topic, _, _ in sensors), cfg.observation_timeout,
                                    history=(topics.PERCEPTION_TRACKS,))  # tracks: one per history frame
        for topic, msg_type, decode in sensors:
            qos.subscribe_any_publisher(self, msg_type, topic, self.on_sensor(topic, decode), qos.CAMERA_QOS)
        self.create_timer(1.0 / cfg.rate_hz, self.propose)
        self.diagnostics = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, qos.STATE_QOS)
        self.create_timer(1.0, self.publish_diagnostics)
        self.get_logger().info(f"backend '{cfg.backend}' for task '{cfg.task}' at {cfg.rate_hz} Hz")

    def on_joint_state(self, msg: JointState) -> None:
        try:  # the arm's driver and a separate gripper's may each publish their own
            ordered = conv.positions_merged(msg, self.config.joint_names, self.latest_joints)
        except conv.ConversionError as error:
            self.get_logger().warning(f"/joint_states refused: {error}", throttle_duration_sec=2.0)
            return
        if ordered is None:
            unread = [n for n in self.config.joint_names if n not in self.latest_joints]
            self.get_logger().warning(f"waiting for {unread} on /joint_states", throttle_duration_sec=2.0)
            return
        stamp = conv.stamp_to_sec(msg.header.stamp)
        if self.joints is not None and 0.0 < self.joints[0] - stamp <= INTERLEAVE_S:
            return  # another driver's message stamped just before the last one: its values go with the next
        self.joints = (stamp, ordered)
        self.push(JOINTS, stamp, ordered)

    def on_commanded(self, msg: JointTrajectory) -> None:
        """What the arm executes now (a hold, stamped 0, starts when it arrives); commands of a past episode are
        ignored."""
        try:
            command = conv.joint_trajectory_from_msg(msg)
        except conv.ConversionError:
            return
        stamp = command.stamp_sec or self.get_clock().now().nanoseconds * 1e-9
        if self.episode_start is None or stamp <= self.episode_start + STAMP_TOLERANCE:
            return
        self.executing = ExecutingChunk.from_command(command.joint_names, stamp, command.times, command.positions,
                                                     self.config.joint_names)

    def on_objects(self, msg: PoseArray) -> None:
        """Keep the task object: the first pose (perception: the largest object; privileged: [object, goal])."""
        if not self.in_base_frame(self.object_topic, msg.header):
            return
        stamp = conv.stamp_to_sec(msg.header.stamp)
        self.objects_alive = stamp  # the stream is alive even when the object is hidden by the gripper
        if msg.poses:
            pose = msg.poses[0]
            q = pose.orientation
            yaw = quat2euler([q.w, q.x, q.y, q.z])[2]
            position = np.array([pose.position.x, pose.position.y, pose.position.z])
            if self.push(OBJECT, stamp, np.append(position, yaw)):
                self.goal.object_seen(position)

    def push(self, topic: str, stamp: float, value: np.ndarray) -> bool:
        """Feed the shared resampler; samples of a previous episode (stamped up to its reset) are ignored (False)."""
        if self.episode_start is None or stamp <= self.episode_start + STAMP_TOLERANCE:
            return False
        try:
            self.sampler.push(topic, round(stamp * 1e9), value)
        except ClockJumpError as error:
            self.get_logger().warning(f"{error}; starting the observation buffers again")
            self.sampler.reset()
            return False
        return True

    def on_sensor(self, topic: str, decode):
        """A callback keeping the latest decoded message of ``topic`` (a bad one is named and dropped)."""
        def receive(msg) -> None:
            try:
                self.sensors.put(topic, conv.stamp_to_sec(msg.header.stamp), decode(msg))
            except (conv.ConversionError, ValueError) as error:
                self.get_logger().warning(f"{topic}: {error}", throttle_duration_sec=5.0)
        return receive

    def observation(self) -> Observation | None:
        """The observation at the latest joint state's stamp, sampled-and-held by the same resampler
        the dataset converter uses; None while any part predates the episode."""
        if self.joints is None or self.episode_start is None:
            return None
        stamp = self.joints[0]
        current = self.sample_at(stamp)
        if current is None:
            return None
        if stamp - self.objects_alive > self.config.observation_timeout:
            self.get_logger().warning(f"no object message for {stamp - self.objects_alive:.2f} s (camera or "
                                      "perception stale): proposing nothing", throttle_duration_sec=2.0)
            return None
        frames, stale = self.sensors.at(stamp)
        if stale:
            missing = ", ".join(f"{topic} for {age:.2f} s" for topic, age in stale)
            self.get_logger().warning(f"nothing on {missing} (sensor stale or gone): proposing nothing",
                                      throttle_duration_sec=2.0)
            return None
        # history frames before the episode's first samples repeat the earliest one, as the dataset clamps
        offsets = tuple(self.backend.history_offsets)
        history = tuple(self.sample_at(stamp - offset) or current for offset in offsets)
        if self.backend.capabilities.needs_tracks:  # each history frame holds the tracks of its own time
            history = tuple(replace(h, tracks=self.sensors.held(topics.PERCEPTION_TRACKS, h.stamp)) for h in history)
        return Observation(current.stamp, current.joint_names, current.joint_positions, current.object_position,
                           current.object_yaw, current.goal_position, history, frames.get(topics.COLOR_IMAGE),
                           frames.get(topics.PERCEPTION_POINTS), frames.get(topics.PERCEPTION_TRACKS))

    def sample_at(self, stamp: float) -> Observation | None:
        """Joint state and object held at ``stamp`` (None before the first of either)."""
        sampled = self.sampler.sample(round(stamp * 1e9))
        if sampled is None:
            return None
        values, _ = sampled
        obj = values[OBJECT]
        return Observation(stamp=stamp, joint_names=self.config.joint_names, joint_positions=values[JOINTS].copy(),
                           object_position=obj[:3].copy(), object_yaw=float(obj[3]), goal_position=self.goal.current())

    def propose(self) -> None:
        """Timer: snapshot the observation and hand it to the inference thread (unless it is still busy)."""
        obs = self.observation()
        if obs is None:
            return
        if missing := self.goal.missing():
            self.counts["skipped_nan"] += 1
            self.get_logger().warning(f"no goal: {missing}; proposing nothing", throttle_duration_sec=2.0)
            return
        frames = (obs, *obs.history)
        if not all(np.all(np.isfinite(f.joint_positions)) and np.all(np.isfinite(f.object_position))
                   and np.isfinite(f.object_yaw) for f in frames):
            self.counts["skipped_nan"] += 1
            self.get_logger().warning("observation holds NaN (joint state or object pose): skipping this cycle",
                                      throttle_duration_sec=2.0)
            return
        if self.inference is not None and not self.inference.done():
            self.counts["skipped_busy"] += 1
            return
        self.inference = self.worker.submit(self.infer_and_publish, obs, self.episode)

    def infer_and_publish(self, obs: Observation, episode: int) -> None:
        """Worker thread: run the backend, anchor the chunk on the observation stamp, publish."""
        try:
            cfg = self.config
            started = time.perf_counter()
            executing = self.executing_at(obs.stamp)
            rtc = cfg.transition in ("rtc", "prefix")
            # rtc/prefix: what the arm executes while this chunk is computed is frozen into it
            frozen_s = self.latency.estimate_s() + cfg.min_lead
            prefix = CommittedPrefix(executing, frozen_s, cfg.transition == "prefix") if rtc and executing else None
            with self.policy_lock:
                if episode != self.episode:
                    return
                candidates = self.backend.sample_candidates(obs, self.proposer_config.num_candidates, prefix)
            if self.perturbation.active:
                candidates = self.perturbation.apply(candidates)
            times = cfg.chunk_dt * np.arange(1, candidates.shape[1] + 1)
            self.delay.wait()
            self.inference_ms.append(1e3 * (time.perf_counter() - started))
            age = self.get_clock().now().nanoseconds * 1e-9 - obs.stamp
            self.latency.add(age)
            budget = cfg.observation_budget + self.delay.max_s
            if episode != self.episode:
                return  # a new episode began while this chunk was computed
            if age > budget:
                self.counts["dropped_stale"] += 1
                self.get_logger().warning(f"chunk ready {age * 1e3:.0f} ms after its observation (budget "
                                          f"{budget * 1e3:.0f} ms): not sent", throttle_duration_sec=2.0)
                return
            if cfg.transition == "ensemble" and executing is not None:
                previous = (executing.stamp, executing.times, executing.positions)
                candidates = blend_with_previous(times, candidates, obs.stamp, previous, cfg.chunk_blend)
            # rtc/prefix: a chunk for a standing arm starts when it is ready (nothing of it can have executed);
            # measured for replace too (Panda reach 35/50 -> 22/50): left as it was there
            standing = rtc and executing is None
            times, candidates = drop_past_points(times, candidates, age, cfg.min_lead, standing=standing)
            if not len(times):
                return
            # fitted last (a blend of two fitted chunks can overshoot a braking distance), from where the
            # controller is headed now, which is where the safety node measures the first step from; the whole
            # minimum lead is left for the trip to the safety node, its check and its check again as it sends
            start, velocity = fit_origin(self.executing, obs.stamp + age, obs.joint_positions, self.limits,
                                         self.backend.capabilities.starts_at_full_speed, cfg.min_lead)
            candidates = fit_to_limits(times - age - cfg.min_lead, candidates, start, self.limits, velocity,
                                       SafetyConfig.max_step)  # the safety node's defaults (one source)
            if self.workspace_fit is not None:
                candidates = self.workspace_fit(times, candidates, start)
            if self.fresh_episode:
                self.fresh_episode = False
                self.get_logger().info(
                    f"first chunk of episode {self.episode} from the observation at {obs.stamp:.3f} s, "
                    f"object at {np.round(obs.object_position, 3).tolist()}, {len(candidates)} candidates")
            self.pub.publish(candidates_to_msg(self.published_joints, times, candidates[..., self.published_columns],
                                               conv.sec_to_stamp(obs.stamp)))
            self.counts["published"] += 1
        except Exception as error:  # noqa: BLE001 - a failing backend must not kill the node silently
            self.get_logger().error(f"backend '{self.config.backend}' failed: {error!r}", throttle_duration_sec=2.0)

    def executing_at(self, stamp: float) -> ExecutingChunk | None:
        """The command the arm executes at ``stamp`` (None when it is standing: none sent, or it ended)."""
        executing = self.executing
        return executing if executing is not None and executing.end >= stamp else None

    def publish_diagnostics(self) -> None:
        """Inference latency percentiles (wall clock, ms) and counts on /diagnostics."""
        self.diagnostics.publish(policy_diagnostics(self.config.backend, self.config.transition, self.inference_ms,
                                                    self.latency.estimate_s(), self.counts,
                                                    self.get_clock().now().to_msg()))


def main(args: list[str] | None = None) -> None:
    """Entry point: ``policy_node --ros-args -p backend:=scripted -p task:=pick``."""
    run_node(PolicyNode, args)


if __name__ == "__main__":
    main()
