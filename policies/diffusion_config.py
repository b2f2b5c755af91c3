"""Configuration of the diffusion policy (pure dataclass, saved as JSON next to the weights)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from armpilot.features import ACTION, COLOR, GOAL, OBJECT, STATE, TRACKS, TRACKS_MASK  # noqa: F401 (re-exported)

#: Statistics key of action offsets from the latest joint state (``relative_actions``).
ACTION_OFFSET = "action.relative"
#: Statistics key of the latest joint step, state[-1] - state[-2] (``state_velocity``).
STATE_STEP = "observation.state.step"
#: Observation features the encoder knows, with their per-step sizes (the state's is the joint count).
OBJECT_DIM, GOAL_DIM = 7, 3
#: Values of fields a checkpoint saved before the field existed was trained with.
LEGACY_FIELDS = {"normalize_points": False, "state_velocity": False}
SAMPLERS = ("ddpm", "ddim", "dpm", "streaming")
#: ``action_space`` values: joint positions, or the tool's pose (``tool_frame``).
ACTION_SPACES = ("joint", "tool")
#: Size of the tool pose in tool space: the TCP position offset (3) and rotation (6D, two columns).
TOOL_POSE_DIM = 9
#: ``point_encoder`` values: the DP3 PointNet, or local features and 3D soft keypoints (``point_keypoints``).
POINT_ENCODERS = ("pointnet", "keypoints")
#: ``points_frame`` values: the cloud as perceived (base frame), or as offsets from the task goal.
POINT_FRAMES = ("world", "goal")
#: Camera features the image encoder can read.
IMAGE_KEYS = (COLOR,)


#: ``image_region`` of the whole frame: (left, top, right, bottom), fractions of width and height.
FULL_FRAME = (0.0, 0.0, 1.0, 1.0)


def check_region(region: tuple[float, ...]) -> None:
    """ValueError unless ``region`` is (left, top, right, bottom) with 0 <= left < right <= 1 (and top, bottom)."""
    if len(region) != 4 or not (0 <= region[0] < region[2] <= 1 and 0 <= region[1] < region[3] <= 1):
        raise ValueError(f"image region {tuple(region)} must be (left, top, right, bottom) fractions of the frame "
                         "with 0 <= left < right <= 1 and 0 <= top < bottom <= 1")


@dataclass(frozen=True)
class DiffusionConfig:
    """Shapes, network size and noise schedule.

    Attributes:
        joint_names: (J,) the action/state column order; a node with another order is refused.
        obs_keys: low-dim observation features, each (n_obs_steps, D) per sample.
        n_obs_steps: observation history, frames.
        horizon: predicted action frames, H (a multiple of 2 ** (len(down_dims) - 1)).
        action_dt: time between action frames, s (1 / dataset fps).
        action_delay: time from the observation to the first action frame, s (a recorded
            command is the first point of a chunk, ``chunk_dt`` = 0.1 s ahead).
        use_tracks: encode motion tracks (K, T, 3) with a masked point encoder.
        down_dims: U-Net channel widths per level.
        kernel_size: temporal convolution width, frames.
        n_groups: GroupNorm groups.
        step_embed_dim: diffusion-step embedding size.
        obs_embed_dim: observation embedding size (FiLM conditioning = step + obs).
        num_train_timesteps: DDPM steps, T.
        beta_schedule: diffusers beta schedule name.
        prediction_type: "epsilon" (noise) or "sample" (clean chunk).
        normalization: "min_max" (to [-1, 1]) or "mean_std", from dataset statistics.
        prefix_frames: training-time action conditioning (transition ``prefix``): each training
            chunk's first d ~ U{0..prefix_frames} frames are given clean, flagged in an extra input
            channel and left out of the loss; at inference the committed prefix goes there. 0 = off.
        robot: the robot profile the training data was recorded with ("" = unknown); a node
            running another robot is refused.
        relative_actions: the network predicts each action frame as an offset from the latest
            observed joint state (normalised with the offsets' statistics, ``action.relative``);
            a chunk then starts where the arm is, whatever the error in absolute terms.
        image_keys: camera features seen by a ResNet-18-style encoder each (``vision_encoders``);
            the latest frame only, resized to ``image_size`` x ``image_size`` px (INTER_AREA).
        image_size: side of the square every camera frame is resized to, px.
        image_crop: side of the crop the encoder sees, px (random in training, centred at inference).
        image_region: the part of each camera frame resized to ``image_size``: (left, top, right, bottom) as
            fractions of its width and height (the whole frame by default; the table's part gives a small
            image more pixels on the objects).
        use_points: encode the latest filtered cloud (``observation.points``, P x 3 m, with its mask) with
            a DP3-style PointNet (``vision_encoders.PointCloudEncoder``).
        normalize_points: map the cloud's x, y, z to [-1, 1] with the training clouds' range (the statistics
            stored as ``observation.points``) before the PointNet. Raw metres span a few centimetres around
            the workspace centre, and the PointNet's per-point LayerNorm scales that offset away, so the
            object's position reached the network blurred. Checkpoints saved before this field read False.
        point_encoder: the cloud's encoder: "pointnet" (DP3's shared MLP and max pool) or "keypoints"
            (local EdgeConv features and 3D soft keypoints, ``point_keypoints.KeypointCloudEncoder``).
        points_frame: "world" (the cloud in the base frame, as perceived) or "goal" (every point an offset
            from the latest goal, m, before normalising: where the object is relative to where it must go is
            then what the PointNet sees directly; needs the goal among ``obs_keys``).
        action_space: "joint" (the network predicts joint positions) or "tool" (``tool_frame``: the TCP's
            position as an offset from the TCP at the latest observation, its rotation, and the joints the
            IK does not drive as they are; every position the network sees is an offset from that same
            TCP, so a scene shifted on the table looks the same; IK turns the chunk back into joints).
        tool_passthrough: with ``action_space`` "tool", the joints carried as they are (a gripper): the
            joints of ``joint_names`` that are not the profile's arm joints.
        state_velocity: give the encoder the latest joint step (state[-1] - state[-2], (J,) per sample)
            scaled to zero mean and unit std by its own training statistics (``observation.state.step``).
            Min-max normalised over the workspace, two state frames differ by about 1 % of their range,
            and the network's first action frames came out nearer "stay" than a constant-velocity guess.
            Checkpoints saved before this field read False.
    """

    joint_names: tuple[str, ...]
    obs_keys: tuple[str, ...] = (STATE, OBJECT, GOAL)
    n_obs_steps: int = 2
    horizon: int = 16
    action_dt: float = 1.0 / 15.0
    action_delay: float = 0.1
    use_tracks: bool = False
    down_dims: tuple[int, ...] = (32, 64, 128)
    kernel_size: int = 5
    n_groups: int = 8
    step_embed_dim: int = 64
    obs_embed_dim: int = 128
    num_train_timesteps: int = 100
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "sample"
    normalization: str = "min_max"
    prefix_frames: int = 0
    robot: str = ""
    relative_actions: bool = False
    image_keys: tuple[str, ...] = ()
    image_size: int = 96
    image_crop: int = 84
    image_region: tuple[float, float, float, float] = FULL_FRAME
    use_points: bool = False
    normalize_points: bool = True
    point_encoder: str = "pointnet"
    points_frame: str = "world"
    action_space: str = "joint"
    tool_passthrough: tuple[str, ...] = ()
    state_velocity: bool = False

    def __post_init__(self) -> None:
        if self.horizon % (2 ** (len(self.down_dims) - 1)):
            raise ValueError(f"horizon {self.horizon} must be a multiple of 2 ** (levels - 1) = "
                             f"{2 ** (len(self.down_dims) - 1)}")
        unknown = set(self.obs_keys) - {STATE, OBJECT, GOAL}
        if unknown:
            raise ValueError(f"unknown observation keys {sorted(unknown)}; known: {[STATE, OBJECT, GOAL]}")
        if set(self.image_keys) - set(IMAGE_KEYS):
            raise ValueError(f"unknown image keys {sorted(set(self.image_keys) - set(IMAGE_KEYS))}; known: "
                             f"{list(IMAGE_KEYS)}")
        if not 0 < self.image_crop <= self.image_size:
            raise ValueError(f"image_crop {self.image_crop} must be in (0, image_size = {self.image_size}]")
        check_region(self.image_region)
        if not 0 <= self.prefix_frames < self.horizon:
            raise ValueError(f"prefix_frames must be in [0, horizon = {self.horizon}), got {self.prefix_frames}")
        if self.relative_actions and STATE not in self.obs_keys:
            raise ValueError("relative_actions needs the joint state among obs_keys")
        if self.point_encoder not in POINT_ENCODERS:
            raise ValueError(f"unknown point encoder {self.point_encoder!r}; known: {list(POINT_ENCODERS)}")
        if self.points_frame not in POINT_FRAMES:
            raise ValueError(f"unknown points frame {self.points_frame!r}; known: {list(POINT_FRAMES)}")
        if self.points_frame == "goal" and (GOAL not in self.obs_keys or self.action_space != "joint"):
            raise ValueError("points_frame 'goal' needs the goal among obs_keys and joint actions (tool actions "
                             "see the cloud from the tool already)")
        if self.action_space not in ACTION_SPACES:
            raise ValueError(f"unknown action space {self.action_space!r}; known: {list(ACTION_SPACES)}")
        if self.state_velocity and (STATE not in self.obs_keys or self.n_obs_steps < 2):
            raise ValueError("state_velocity needs the joint state among obs_keys and n_obs_steps >= 2")
        if self.action_space == "tool" and self.relative_actions:
            raise ValueError("relative_actions is for joint actions; tool actions are offsets from the TCP already")
        if set(self.tool_passthrough) - set(self.joint_names):
            raise ValueError(f"tool_passthrough {list(self.tool_passthrough)} are not among joint_names")
        if self.prediction_type not in ("epsilon", "sample"):
            raise ValueError(f"prediction_type {self.prediction_type!r}: use 'epsilon' or 'sample'")

    @property
    def action_dim(self) -> int:
        """Joints the policy commands, J."""
        return len(self.joint_names)

    @property
    def network_dim(self) -> int:
        """Size of one action frame (and state frame) as the network sees it: J, or the tool pose and the
        passthrough joints."""
        return self.action_dim if self.action_space == "joint" else TOOL_POSE_DIM + len(self.tool_passthrough)

    def feature_dim(self, key: str) -> int:
        """Per-step size of a low-dim observation feature."""
        return {STATE: self.network_dim, OBJECT: OBJECT_DIM, GOAL: GOAL_DIM}[key]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> DiffusionConfig:
        """Parse a saved config; lists become tuples, unknown keys are an error naming them."""
        raw = {**LEGACY_FIELDS, **json.loads(text)}
        names = {f.name for f in fields(cls)}
        unknown = set(raw) - names
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)} (written by a newer armpilot?)")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
