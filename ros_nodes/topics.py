"""Default topic and service names, in one place (every one is remappable)."""

JOINT_STATES = "/joint_states"
CLOCK = "/clock"
COLOR_IMAGE = "/camera/camera/color/image_raw"
COLOR_INFO = "/camera/camera/color/camera_info"
DEPTH_IMAGE = "/camera/camera/aligned_depth_to_color/image_raw"
DEPTH_INFO = "/camera/camera/aligned_depth_to_color/camera_info"
CONTROLLER_COMMAND = "/arm_controller/joint_trajectory"
DIAGNOSTICS = "/diagnostics"
# sim-only (node-relative to the node called "sim")
PRIVILEGED_OBJECTS = "~/privileged/object_poses"
TASK_SUCCESS = "~/task_success"
EPISODE = "~/episode"
RESET_SERVICE = "~/reset"
# the same, as seen from other nodes
SIM_PRIVILEGED_OBJECTS = "/sim/privileged/object_poses"
SIM_TASK_SUCCESS = "/sim/task_success"
SIM_EPISODE = "/sim/episode"
SIM_RESET = "/sim/reset"
# perception
PERCEPTION_POINTS = "/perception/points"
PERCEPTION_OBJECTS = "/perception/objects"
PERCEPTION_OBJECT_MARKERS = "/perception/object_markers"
PERCEPTION_TRACKS = "/perception/tracks"
PERCEPTION_TRACK_MARKERS = "/perception/track_markers"
# proposals into the safety node
POLICY_CANDIDATES = "/policy/candidates"
#: A copy of every command the safety node sends to the controller (holds included): what the arm executes.
SAFETY_COMMANDED = "/safety/commanded"
POLICY_INSTRUCTION = "/policy/instruction"
#: std_msgs/Int64, an episode number: from now on that episode's second backend drives (backend handover).
POLICY_HANDOVER = "/policy/handover"
#: The task goal (geometry_msgs/PoseStamped in the robot's base frame): a user's, RViz's or the sim's.
POLICY_GOAL = "/policy/goal"
TELEOP_COMMAND = "/teleop/joint_trajectory"
# safety node services (node-relative to the node called "safety")
ESTOP_SERVICE = "~/estop"
ESTOP_RESET_SERVICE = "~/reset"
ENABLE_SERVICE = "~/enable"
# recording (node-relative to the node called "recorder")
RECORDER_START = "/recorder/start"
RECORDER_STOP = "/recorder/stop"
RECORDER_DISCARD = "/recorder/discard"
JOY = "/joy"
