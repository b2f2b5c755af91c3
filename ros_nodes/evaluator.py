"""Evaluator node: drives seeded episodes of a running sim graph and measures it.

Sets the sim's ``seed`` parameter, calls ``/sim/reset``, waits for
``/sim/task_success`` or the task's time limit (sim time), and meanwhile counts
topic rates, the command latency (wall time from a joint state's arrival to
the arrival of the controller command stamped with it), camera frames and the
jump at every switch between controller commands (:mod:`armpilot.chunk_switches`).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from geometry_msgs.msg import PoseArray
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState, PointCloud2
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from armpilot.chunk_switches import SwitchLog
from armpilot.control.trajectory import STAMP_TOLERANCE
from armpilot.evaluation import EpisodeResult, LatencyLog, RateMeter
from armpilot.ros_nodes import conversions as conv
from armpilot.ros_nodes import qos, topics
from armpilot.sim.episode_message import decode_episode
from armpilot.tasks import TASKS

#: Success messages within this much sim time after a reset are ignored (in flight from before).
SUCCESS_GRACE_S = 0.3
#: Joint-state arrival times kept for latency matching.
STAMP_MEMORY = 4096

MEASURED_TOPICS = (
    topics.JOINT_STATES, topics.CLOCK, topics.COLOR_IMAGE, topics.DEPTH_IMAGE,
    topics.POLICY_CANDIDATES, topics.CONTROLLER_COMMAND,
)


#: How long a service call to the sim may take, s (its one thread also steps physics and renders).
SERVICE_TIMEOUT_S = 30.0

class EvaluatorNode(Node):
    """Episode driver and meter for ``armpilot demo`` and the graph tests."""

    def __init__(self, keep_frames: bool = True, command_topic: str = topics.CONTROLLER_COMMAND) -> None:
        """``command_topic``: where the graph's safety node sends commands (the sim graphs rename it)."""
        super().__init__("evaluator", cli_args=["--ros-args", "-r", f"{topics.CONTROLLER_COMMAND}:={command_topic}"])
        self.rates = {t: RateMeter() for t in MEASURED_TOPICS}
        self.latency = LatencyLog()
        self.switches = SwitchLog()
        self.arrivals: OrderedDict[int, float] = OrderedDict()
        self.sim_time = 0.0
        self.success = False
        self.success_now = False  # the latest /sim/task_success (``success`` latches the first True)
        self.episode_info: dict = {}
        self.safety_counts: dict[str, str] = {}
        self.policy_status: dict[str, str] = {}
        self.keep_frames = keep_frames
        self.latest_frame: np.ndarray | None = None
        self.frame_listeners: list = []
        self.latest_joints: np.ndarray | None = None
        self.goal_distance: float | None = None  # m, the object's last ground-truth distance to the goal
        self.create_subscription(JointState, topics.JOINT_STATES, self.on_joint_state, qos.STATE_QOS)
        self.create_subscription(Clock, topics.CLOCK, self.on_clock, qos.CLOCK_QOS)
        self.create_subscription(Image, topics.COLOR_IMAGE, self.on_color, qos.CAMERA_QOS)
        self.create_subscription(Image, topics.DEPTH_IMAGE, self.counter(topics.DEPTH_IMAGE), qos.CAMERA_QOS)
        self.create_subscription(PointCloud2, topics.POLICY_CANDIDATES, self.counter(topics.POLICY_CANDIDATES),
                                 qos.COMMAND_QOS)
        self.create_subscription(JointTrajectory, topics.CONTROLLER_COMMAND, self.on_command, qos.COMMAND_QOS)
        self.create_subscription(Bool, topics.SIM_TASK_SUCCESS, self.on_success, qos.STATE_QOS)
        self.create_subscription(String, topics.SIM_EPISODE, self.on_episode, qos.LATCHED_QOS)
        self.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self.on_diagnostics, qos.STATE_QOS)
        self.create_subscription(PoseArray, topics.SIM_PRIVILEGED_OBJECTS, self.on_ground_truth, qos.STATE_QOS)
        self.reset_client = self.create_client(Trigger, topics.SIM_RESET)
        self.param_client = self.create_client(SetParameters, "/sim/set_parameters")
        self.trigger_clients: dict = {}

    def counter(self, topic: str):
        return lambda _msg: self.rates[topic].tick(time.monotonic())

    def on_joint_state(self, msg: JointState) -> None:
        now = time.monotonic()
        self.rates[topics.JOINT_STATES].tick(now)
        stamp = msg.header.stamp
        self.arrivals[stamp.sec * 1_000_000_000 + stamp.nanosec] = now
        while len(self.arrivals) > STAMP_MEMORY:
            self.arrivals.popitem(last=False)
        self.latest_joints = np.array(msg.position)

    def on_command(self, msg: JointTrajectory) -> None:
        now = time.monotonic()
        self.rates[topics.CONTROLLER_COMMAND].tick(now)
        key = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        if key in self.arrivals:
            self.latency.add(now - self.arrivals[key])
        try:
            trajectory = conv.joint_trajectory_from_msg(msg)
        except conv.ConversionError:
            trajectory = None
        if trajectory is not None and trajectory.stamp_sec > 0:  # a hold (stamp 0: start now) ends the chain
            self.switches.add(trajectory.stamp_sec + trajectory.times, trajectory.positions)
        else:
            self.switches.reset()

    def on_clock(self, msg: Clock) -> None:
        self.rates[topics.CLOCK].tick(time.monotonic())
        self.sim_time = conv.stamp_to_sec(msg.clock)

    def on_color(self, msg: Image) -> None:
        self.rates[topics.COLOR_IMAGE].tick(time.monotonic())
        if self.keep_frames:
            try:
                self.latest_frame = conv.image_from_msg(msg).copy()
            except conv.ConversionError as error:
                self.get_logger().warning(f"{topics.COLOR_IMAGE}: {error}", throttle_duration_sec=5.0)
                return
            for listener in self.frame_listeners:
                listener(self.latest_frame)

    def on_success(self, msg: Bool) -> None:
        start = float(self.episode_info.get("start", 0.0))
        if self.sim_time - start >= SUCCESS_GRACE_S:
            self.success = self.success or bool(msg.data)
            self.success_now = bool(msg.data)

    def on_ground_truth(self, msg: PoseArray) -> None:
        """[object, goal] from the sim: keep the object's distance to the goal in the table plane (m), for tasks
        whose goal the user gives (push, place); samples stamped up to the episode's start are the last one's."""
        task = self.episode_info.get("task")
        if len(msg.poses) < 2 or not isinstance(task, str) or task not in TASKS or not TASKS[task].needs_user_goal:
            return
        if conv.stamp_to_sec(msg.header.stamp) <= float(self.episode_info.get("start", 0.0)) + STAMP_TOLERANCE:
            return
        obj, goal = msg.poses[0].position, msg.poses[1].position
        self.goal_distance = round(float(np.hypot(obj.x - goal.x, obj.y - goal.y)), 4)

    def on_episode(self, msg: String) -> None:
        try:
            self.episode_info = decode_episode(msg.data)
        except ValueError as error:
            self.get_logger().error(f"{topics.SIM_EPISODE}: ignored: {error}", throttle_duration_sec=2.0)

    def on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == "armpilot: safety":
                self.safety_counts = {kv.key: kv.value for kv in status.values}
            elif status.name == "armpilot: policy":
                self.policy_status = {kv.key: kv.value for kv in status.values}

    def spin_for(self, seconds: float) -> None:
        """Process callbacks for ``seconds`` of wall time."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            rclpy.spin_once(self, timeout_sec=min(0.05, max(0.0, deadline - time.monotonic())))

    def spin_sim_for(self, seconds: float, settle: float = 0.2, until: Callable[[], bool] | None = None,
                     max_wall: float | None = None) -> float:
        """Process callbacks until ``seconds`` of sim time have passed (at most ``max_wall`` s of wall time,
        by default ``max(5, 10 x seconds)``: a loaded machine slows the sim), and at least ``settle`` s of wall
        time (messages in flight arrive), or until ``until()`` is true. Returns the sim seconds that passed."""
        start, began = self.sim_time, time.monotonic()
        deadline = began + (max(5.0, 10.0 * seconds) if max_wall is None else max_wall)
        while (self.sim_time - start < seconds or time.monotonic() - began < settle) and time.monotonic() < deadline:
            rclpy.spin_once(self, timeout_sec=0.05)
            if until is not None and until():
                break
        return self.sim_time - start

    def _call(self, client, request, what: str, timeout: float = SERVICE_TIMEOUT_S):
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"service {client.srv_name} not available after {timeout:.0f} s ({what})")
        future = client.call_async(request)
        rclpy.spin_until_future_complete(self, future, timeout_sec=timeout)
        if not future.done() or future.result() is None:
            raise TimeoutError(f"{what}: no answer from {client.srv_name} within {timeout:.0f} s")
        return future.result()

    def wait_until_ready(self, timeout: float = 60.0, policy: bool = False,
                         alive: Callable[[], None] | None = None, safety: bool = False) -> None:
        """Block until the sim publishes joint states and its reset service is up, with ``policy`` until the
        policy node reports on /diagnostics (it starts its timers once its backend is loaded: a VLA takes ~10 s on
        a busy 2-core CPU, which the first episode lost while the sim ran on), and with ``safety`` until the safety
        node reports hearing /joint_states (on a loaded 2-core machine its first came 3 s after it started).
        ``alive`` raises when a node died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rclpy.spin_once(self, timeout_sec=0.1)
            if alive is not None:
                alive()
            sim = self.latest_joints is not None and self.sim_time > 0 and self.reset_client.service_is_ready()
            heard = self.safety_counts.get("joint_states_heard") == "True" or not safety
            if sim and heard and (self.policy_status or not policy):
                return
        raise TimeoutError(f"the sim graph did not come up within {timeout:.0f} s "
                           f"(joint states seen: {self.latest_joints is not None}, clock seen: {self.sim_time > 0}"
                           + (f", policy node ready: {bool(self.policy_status)}" if policy else "")
                           + (f", safety node heard joint states: {self.safety_counts.get('joint_states_heard')}"
                              if safety else "") + ")")

    def reset_episode(self, seed: int) -> dict:
        """Set the sim's seed and reset; returns the sim's answer (episode, seed, object)."""
        value = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=int(seed))
        result = self._call(self.param_client, SetParameters.Request(parameters=[Parameter(name="seed", value=value)]),
                            "setting the seed")
        if not result.results[0].successful:
            raise RuntimeError(f"the sim refused seed {seed}: {result.results[0].reason}")
        answer = self._call(self.reset_client, Trigger.Request(), "resetting the episode")
        info = json.loads(answer.message)
        deadline = time.monotonic() + 5.0
        while self.episode_info.get("episode") != info["episode"] and time.monotonic() < deadline:
            rclpy.spin_once(self, timeout_sec=0.05)
        self.success = self.success_now = False
        self.goal_distance = None
        self.switches.reset()
        return info

    def wait_for_service(self, service: str, timeout: float = 30.0) -> None:
        """Block until a std_srvs/Trigger ``service`` is up (TimeoutError naming it)."""
        client = self.trigger_clients.get(service) or self.create_client(Trigger, service)
        self.trigger_clients[service] = client
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"service {service} not available after {timeout:.0f} s")

    def trigger(self, service: str, timeout: float = 10.0) -> str:
        """Call a std_srvs/Trigger service; its message, or RuntimeError when it reports failure."""
        client = self.trigger_clients.get(service) or self.create_client(Trigger, service)
        self.trigger_clients[service] = client
        answer = self._call(client, Trigger.Request(), f"calling {service}", timeout)
        if not answer.success:
            raise RuntimeError(f"{service} failed: {answer.message}")
        return answer.message

    def run_episode(self, index: int, seed: int, max_duration: float, started=None) -> EpisodeResult:
        """One seeded episode until success or ``max_duration`` s of sim time; ``started()`` runs after the reset."""
        self.reset_episode(seed)
        if started is not None:
            started()
        start_sim = float(self.episode_info.get("start", self.sim_time))
        start_wall = time.monotonic()
        wall_limit = start_wall + max(30.0, 10 * max_duration)
        while self.sim_time - start_sim < max_duration and time.monotonic() < wall_limit:
            rclpy.spin_once(self, timeout_sec=0.05)
            if self.success:
                break
        rclpy.spin_once(self, timeout_sec=0.05)  # the ground truth of the last step
        return EpisodeResult(index, seed, self.success, round(self.sim_time - start_sim, 3),
                             round(time.monotonic() - start_wall, 3), self.goal_distance,
                             dict(self.episode_info.get("scene", {})))

    def topic_rates(self) -> dict[str, float]:
        return {topic: round(meter.rate_hz(), 2) for topic, meter in self.rates.items()}
