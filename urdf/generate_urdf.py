"""Generator for urdf/armpilot_arm.urdf: inertias computed from primitive geometry. Run: python urdf/generate_urdf.py"""
import math
L = []
def box_inertia(m, x, y, z):
    return (m*(y*y+z*z)/12, m*(x*x+z*z)/12, m*(x*x+y*y)/12)
def cyl_inertia(m, r, h):
    ixx = m*(3*r*r+h*h)/12
    return (ixx, ixx, m*r*r/2)
def inertial(m, I, xyz="0 0 0"):
    return (f'    <inertial>\n      <origin xyz="{xyz}" rpy="0 0 0"/>\n      <mass value="{m}"/>\n'
            f'      <inertia ixx="{I[0]:.6g}" ixy="0" ixz="0" iyy="{I[1]:.6g}" iyz="0" izz="{I[2]:.6g}"/>\n    </inertial>\n')
def geom(kind, dims, xyz, rgba_name):
    g = f'<cylinder radius="{dims[0]}" length="{dims[1]}"/>' if kind == "cyl" else f'<box size="{dims[0]} {dims[1]} {dims[2]}"/>'
    s = ""
    for tag in ("visual", "collision"):
        s += f'    <{tag}>\n      <origin xyz="{xyz}" rpy="0 0 0"/>\n      <geometry>{g}</geometry>\n'
        if tag == "visual":
            s += f'      <material name="{rgba_name}"/>\n'
        s += f'    </{tag}>\n'
    return s
def link(name, kind, dims, m, xyz, mat, visual_only=False):
    I = cyl_inertia(m, *dims) if kind == "cyl" else box_inertia(m, *dims)
    g = geom(kind, dims, xyz, mat)
    if visual_only:
        g = g[:g.index("    <collision>")]
    return f'  <link name="{name}">\n' + g + inertial(m, I, xyz) + '  </link>\n'
def joint(name, parent, child, xyz, axis, lo, hi, vel, eff, damping=0.5, jtype="revolute", rpy="0 0 0"):
    return (f'  <joint name="{name}" type="{jtype}">\n    <parent link="{parent}"/>\n    <child link="{child}"/>\n'
            f'    <origin xyz="{xyz}" rpy="{rpy}"/>\n    <axis xyz="{axis}"/>\n'
            f'    <limit lower="{lo}" upper="{hi}" velocity="{vel}" effort="{eff}"/>\n'
            f'    <dynamics damping="{damping}" friction="0.0"/>\n  </joint>\n')
def fixed(name, parent, child, xyz, rpy="0 0 0"):
    return (f'  <joint name="{name}" type="fixed">\n    <parent link="{parent}"/>\n    <child link="{child}"/>\n'
            f'    <origin xyz="{xyz}" rpy="{rpy}"/>\n  </joint>\n')
def frame(name):
    return f'  <link name="{name}"/>\n'

out = ['<?xml version="1.0"?>\n',
'<!-- armpilot_arm: a 6-DoF arm with a parallel two-finger gripper and a fixed RGB-D camera.\n'
'     Primitive geometry, SI units (m, kg, rad, s). base_link sits on the table surface.\n'
'     Joint order used everywhere (controller, policy, safety):\n'
'       shoulder_pan_joint shoulder_lift_joint elbow_joint wrist_1_joint wrist_2_joint wrist_3_joint gripper_joint\n'
'     gripper_joint is the left finger (0 = closed, 0.04 = open, metres per finger);\n'
'     gripper_right_finger_joint mimics it. -->\n',
'<robot name="armpilot_arm">\n',
'  <!-- read by MuJoCo only: keep collision geometry, keep fixed links as bodies -->\n  <mujoco><compiler discardvisual="true" fusestatic="false"/></mujoco>\n',
'  <material name="grey"><color rgba="0.55 0.57 0.6 1"/></material>\n',
'  <material name="orange"><color rgba="0.95 0.5 0.1 1"/></material>\n',
'  <material name="dark"><color rgba="0.15 0.15 0.17 1"/></material>\n',
]
out.append(link("base_link", "cyl", (0.07, 0.10), 2.0, "0 0 0.05", "dark"))
out.append(joint("shoulder_pan_joint", "base_link", "shoulder_link", "0 0 0.10", "0 0 1", -3.05, 3.05, 2.0, 80))
out.append(link("shoulder_link", "cyl", (0.06, 0.08), 1.5, "0 0 0.04", "grey"))
out.append(joint("shoulder_lift_joint", "shoulder_link", "upper_arm_link", "0 0 0.08", "0 1 0", -2.0, 2.0, 2.0, 80))
out.append(link("upper_arm_link", "box", (0.07, 0.07, 0.32), 2.0, "0 0 0.16", "orange"))
out.append(joint("elbow_joint", "upper_arm_link", "forearm_link", "0 0 0.32", "0 1 0", -2.6, 2.6, 2.5, 40))
out.append(link("forearm_link", "box", (0.055, 0.055, 0.18), 1.2, "0 0 0.09", "grey"))
out.append(joint("wrist_1_joint", "forearm_link", "wrist_1_link", "0 0 0.18", "0 0 1", -3.05, 3.05, 3.0, 15))
out.append(link("wrist_1_link", "cyl", (0.035, 0.10), 0.5, "0 0 0.05", "orange"))
out.append(joint("wrist_2_joint", "wrist_1_link", "wrist_2_link", "0 0 0.10", "0 1 0", -2.0, 2.0, 3.0, 15))
out.append(link("wrist_2_link", "cyl", (0.035, 0.06), 0.4, "0 0 0.03", "grey"))
out.append(joint("wrist_3_joint", "wrist_2_link", "flange", "0 0 0.06", "0 0 1", -3.05, 3.05, 3.0, 10))
out.append(link("flange", "cyl", (0.03, 0.01), 0.1, "0 0 0.005", "dark"))
out.append(fixed("flange_to_gripper", "flange", "gripper_base_link", "0 0 0.01"))
out.append(link("gripper_base_link", "box", (0.04, 0.11, 0.03), 0.35, "0 0 0.015", "dark"))
out.append(joint("gripper_joint", "gripper_base_link", "gripper_left_finger", "0 0 0.03", "0 1 0", 0.0, 0.04, 0.1, 40, damping=2.0, jtype="prismatic"))
out.append(link("gripper_left_finger", "box", (0.02, 0.012, 0.06), 0.05, "0 0.006 0.03", "grey"))
mim = joint("gripper_right_finger_joint", "gripper_base_link", "gripper_right_finger", "0 0 0.03", "0 -1 0", 0.0, 0.04, 0.1, 40, damping=2.0, jtype="prismatic")
mim = mim.replace("  </joint>\n", '    <mimic joint="gripper_joint" multiplier="1" offset="0"/>\n  </joint>\n')
out.append(mim)
out.append(link("gripper_right_finger", "box", (0.02, 0.012, 0.06), 0.05, "0 -0.006 0.03", "grey"))
out.append(fixed("tcp_joint", "gripper_base_link", "tool_tcp", "0 0 0.075"))
out.append(frame("tool_tcp"))
# camera: fixed, in front of the arm, looking back at the table
out.append(fixed("camera_joint", "base_link", "camera_link", "1.15 0.0 0.85", rpy=f"0 {math.radians(45):.6f} {math.pi:.6f}"))
out.append(link("camera_link", "box", (0.025, 0.09, 0.025), 0.072, "0 0 0", "dark", visual_only=True))
out.append(fixed("camera_color_optical_joint", "camera_link", "camera_color_optical_frame", "0 0 0", rpy=f"{-math.pi/2:.6f} 0 {-math.pi/2:.6f}"))
out.append(frame("camera_color_optical_frame"))
out.append(fixed("camera_depth_optical_joint", "camera_link", "camera_depth_optical_frame", "0 0 0", rpy=f"{-math.pi/2:.6f} 0 {-math.pi/2:.6f}"))
out.append(frame("camera_depth_optical_frame"))
# ros2_control
rc = ['  <!-- ros2_control: the same description drives mock hardware (default), a real driver\n'
      '       (replace the plugin) or Gazebo (gazebo.launch.py swaps in gz_ros2_control/GazeboSimSystem). -->\n',
      '  <ros2_control name="armpilot_arm_system" type="system">\n',
      '    <hardware>\n      <plugin>mock_components/GenericSystem</plugin>\n    </hardware>\n']
init = {"shoulder_lift_joint": -0.3, "elbow_joint": 1.6, "wrist_2_joint": 1.2}
for j in ["shoulder_pan_joint","shoulder_lift_joint","elbow_joint","wrist_1_joint","wrist_2_joint","wrist_3_joint","gripper_joint"]:
    rc.append(f'    <joint name="{j}">\n      <command_interface name="position"/>\n'
              f'      <state_interface name="position"><param name="initial_value">{init.get(j, 0.04 if j=="gripper_joint" else 0.0)}</param></state_interface>\n'
              f'      <state_interface name="velocity"/>\n    </joint>\n')
rc.append('  </ros2_control>\n')
out += rc
out.append('</robot>\n')
open(__import__("pathlib").Path(__file__).with_name("armpilot_arm.urdf"), "w").write("".join(out))
