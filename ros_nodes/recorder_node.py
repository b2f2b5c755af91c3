"""Episode recorder node: records the listed topics into one rosbag2 (MCAP) bag per episode.

Services (std_srvs/Trigger): ``~/start`` opens the next episode, ``~/stop``
finishes it (``OUT/episode_N``), ``~/discard`` deletes it; each response says
which episode and where. Messages are taken raw (``raw=True``: CDR bytes, no
deserialisation) and stamped with the receive time on the node clock (sim time
under ``use_sim_time``). Latched topics (``qos_profiles: latched``) are cached
and their last message is written at the start of every episode. While
recording, a progress line is logged and diagnostics published every
``progress_period_s``. Ctrl-C finishes the open episode. Writing and recovery:
``armpilot.recording``.
"""

from __future__ import annotations

import importlib

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from rclpy.qos import QoSProfile
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from armpilot.recording import EpisodeRecorder, RecorderConfig, RecordingError, TopicSpec
from armpilot.recording.episode_bag import episode_name
from armpilot.robot_profile import PROFILE_SOURCE_KEY, profile_file_of, robot_identity
from armpilot.ros_nodes import qos, topics
from armpilot.ros_nodes.lifecycle import run_node
from armpilot.ros_nodes.params import declare_config
from armpilot.ros_nodes.robot_loading import load_robot

QOS_BY_PRESET: dict[str, QoSProfile] = {"camera": qos.CAMERA_QOS, "sensor": qos.SENSOR_QOS, "state": qos.STATE_QOS,
                                    "command": qos.COMMAND_QOS, "latched": qos.LATCHED_QOS}


def message_class(msgtype: str) -> type:
    """The rclpy message class of ``pkg/msg/Type`` (ValueError naming the type if not installed)."""
    package, _, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"message type '{msgtype}' is not installed ({error})") from error


def subscriber_qos(spec: TopicSpec, depth: int) -> QoSProfile:
    """The topic's profile from ``qos.py``; reliable ones get a ``depth``-deep history to absorb bursts."""
    base = QOS_BY_PRESET[spec.qos]
    if spec.qos in ("latched", "sensor"):
        return base
    return QoSProfile(history=base.history, depth=max(depth, base.depth), reliability=base.reliability,
                      durability=base.durability)


class RecorderNode(Node):
    """Thin shell: raw subscriptions -> ``EpisodeRecorder``; Trigger services; progress."""

    def __init__(self) -> None:
        super().__init__("recorder")
        self.config = declare_config(self, RecorderConfig)
        self.specs = self.config.topic_specs()
        profile = load_robot(self)
        self.recorder = EpisodeRecorder(self.config.output_dir, self.specs,
                                        chunk_interval_s=self.config.chunk_interval_s,
                                        custom={**robot_identity(profile),
                                                PROFILE_SOURCE_KEY: profile_file_of(profile)})
        for result in self.recorder.recovered:
            self.get_logger().warning(f"leftover of a crashed recorder: {result.line()}")
        self.latched: dict[str, tuple[bytes, int]] = {}
        for spec in self.specs:
            profile = subscriber_qos(spec, self.config.queue_depth)
            unheard = qos.report_incompatible(self, spec.name, profile, f"its messages are NOT recorded (set this "
                                              f"topic's qos_profiles entry, '{spec.qos}' now, to 'sensor' for a "
                                              f"best-effort publisher, 'state' for a volatile one)")
            events = SubscriptionEventCallbacks(message_lost=self._lost_counter(spec.name), incompatible_qos=unheard)
            self.create_subscription(message_class(spec.msgtype), spec.name, self._receiver(spec), profile, raw=True,
                                     event_callbacks=events)
        self.pub_diag = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, qos.STATE_QOS)
        self.create_service(Trigger, "~/start", self.on_start)
        self.create_service(Trigger, "~/stop", self.on_stop)
        self.create_service(Trigger, "~/discard", self.on_discard)
        self.create_timer(self.config.progress_period_s, self.on_progress)
        self.get_logger().info(f"recording {len(self.specs)} topics into {self.recorder.out} "
                               f"(next: call {self.resolve_service_name('~/start')})")

    def now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _receiver(self, spec: TopicSpec):
        latched = spec.qos == "latched"

        def receive(data: bytes) -> None:
            stamp = self.now_ns()
            if latched:
                self.latched[spec.name] = (data, stamp)
            try:
                self.recorder.write(spec.name, data, stamp)
            except RecordingError as error:
                self.get_logger().error(str(error))
        return receive

    def _lost_counter(self, topic: str):
        def lost(info) -> None:
            self.recorder.note_dropped(topic, int(getattr(info, "total_count_change", 1)))
        return lost

    def on_start(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        try:
            partial = self.recorder.start()
        except RecordingError as error:
            response.success, response.message = False, str(error)
            self.get_logger().error(response.message)
            return response
        stamp = self.now_ns()
        try:
            for topic, (data, _) in self.latched.items():
                self.recorder.write(topic, data, stamp)
        except RecordingError as error:  # a full disk: the recorder stopped the episode, kept what was written
            response.success, response.message = False, str(error)
            self.get_logger().error(response.message)
            return response
        response.success = True
        response.message = f"recording {episode_name(self.recorder.stats.episode or 0)} into {partial}"
        self.get_logger().info(response.message)
        return response

    def on_stop(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return self._finish(response, self.recorder.stop, "saved")

    def on_discard(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return self._finish(response, self.recorder.discard, "discarded (deleted)")

    def _finish(self, response: Trigger.Response, action, verb: str) -> Trigger.Response:
        stats = self.recorder.stats
        try:
            path = action()
        except RecordingError as error:
            response.success, response.message = False, str(error)
            self.get_logger().error(response.message)
            return response
        response.success = True
        response.message = (f"{episode_name(stats.episode or 0)} {verb}: {path} "
                            f"({stats.total_messages()} messages, {stats.duration_s:.1f} s)")
        self.get_logger().info(response.message)
        return response

    def on_progress(self) -> None:
        stats = self.recorder.stats
        if self.recorder.recording:
            try:
                self.recorder.flush()
            except RecordingError as error:
                self.get_logger().error(str(error))
            self.get_logger().info(stats.line())
        status = DiagnosticStatus(name="recorder", hardware_id="armpilot",
                                  level=DiagnosticStatus.OK, message=stats.line())
        status.values = [KeyValue(key="recording", value=str(self.recorder.recording)),
                         KeyValue(key="episode", value=str(stats.episode)),
                         KeyValue(key="path", value=str(stats.path)),
                         KeyValue(key="messages", value=str(stats.total_messages())),
                         KeyValue(key="bytes", value=str(stats.bytes)),
                         KeyValue(key="dropped", value=str(sum(stats.dropped.values())))]
        if sum(stats.dropped.values()):
            status.level = DiagnosticStatus.WARN
        self.pub_diag.publish(DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()),
                                              status=[status]))

    def shutdown_recording(self) -> None:
        """Finish the open episode (Ctrl-C / shutdown)."""
        try:
            final = self.recorder.close()
        except RecordingError as error:
            self.get_logger().error(str(error))
            return
        if final is not None:
            self.get_logger().info(f"shutdown: saved {final}")


def main(args: list[str] | None = None) -> None:
    run_node(RecorderNode, args, cleanup=lambda node: node.shutdown_recording())  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
