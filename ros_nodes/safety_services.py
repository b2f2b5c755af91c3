"""The safety node's operator services: e-stop, reset, enable (std_srvs; a mixin of ``SafetyNode``)."""

from __future__ import annotations

from std_srvs.srv import SetBool, Trigger

from armpilot.rejections import Reason
from armpilot.ros_nodes import topics


class OperatorServices:
    """``~/estop`` latches the e-stop and holds, ``~/reset`` clears it, ``~/enable`` (false) holds and refuses.
    The node provides ``lock``, ``supervisor``, ``hold`` and rclpy's ``create_service`` / ``get_logger``."""

    def create_operator_services(self) -> None:
        self.create_service(Trigger, topics.ESTOP_SERVICE, self.on_estop)
        self.create_service(Trigger, topics.ESTOP_RESET_SERVICE, self.on_reset)
        self.create_service(SetBool, topics.ENABLE_SERVICE, self.on_enable)

    def on_estop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self.lock:
            self.supervisor.estop("e-stop service called")
            self.hold(Reason.ESTOP, "e-stop latched; only the reset service clears it")
        response.success, response.message = True, "e-stop latched; call reset to clear"
        return response

    def on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self.lock:
            self.supervisor.reset()
        self.get_logger().info("e-stop cleared")
        response.success, response.message = True, "e-stop cleared"
        return response

    def on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        with self.lock:
            self.supervisor.set_enabled(bool(request.data))
            if not request.data:
                self.hold(Reason.DISABLED, "disabled by the enable service")
        response.success, response.message = True, "enabled" if request.data else "disabled"
        return response
