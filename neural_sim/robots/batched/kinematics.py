"""Forward kinematics of planar MuJoCo robots (bodies in the world xz plane), in torch."""

from __future__ import annotations

import mujoco
import numpy as np
import torch

from neural_sim.robots.dm_control import DmControlTask


def rotate_y(angle: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
    """``local`` (a body-frame offset) in world coordinates after turning ``angle`` about y."""
    c, s = torch.cos(angle).unsqueeze(-1), torch.sin(angle).unsqueeze(-1)
    return torch.cat([c * local[0] + s * local[2], local[1].expand_as(c), -s * local[0] + c * local[2]], -1)


class PlanarKinematics:
    """Forward kinematics of a robot that moves in the world xz plane, in torch.

    Supports MuJoCo trees whose bodies have identity orientation offsets, whose hinges turn
    about +-y and whose slides move along x or z (cheetah, hopper, walker); anything else
    raises ``NotImplementedError`` so the caller falls back to the physics bridge.

    :param bridge: the robot's bridge (its model).
    :param device: where the states it is given live (its constants are put there).
    """

    def __init__(self, bridge: DmControlTask, device: torch.device | str = "cpu") -> None:
        model = bridge.physics.model
        self.device = torch.device(device)

        def tensor(values: object) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float64, device=self.device)

        self._parents = [int(p) for p in model.body_parentid]
        self._body_ids = {mujoco.mj_id2name(model.ptr, mujoco.mjtObj.mjOBJ_BODY, b): b for b in range(model.nbody)}
        self._offsets = tensor(model.body_pos)
        self._com_offsets = tensor(model.body_ipos)
        self.masses = tensor(model.body_mass)
        self._joints: list[list[tuple[str, int, float, torch.Tensor]]] = [[] for _ in range(model.nbody)]
        for body in range(model.nbody):
            if not np.allclose(model.body_quat[body], [1, 0, 0, 0]):
                raise NotImplementedError("a body frame is rotated")
        for joint in range(model.njnt):
            axis, kind = model.jnt_axis[joint], model.jnt_type[joint]
            anchor = tensor(model.jnt_pos[joint])
            address = int(model.jnt_qposadr[joint])
            if kind == mujoco.mjtJoint.mjJNT_HINGE and np.allclose(np.abs(axis), [0, 1, 0]):
                self._joints[model.jnt_bodyid[joint]].append(("hinge", address, float(axis[1]), anchor))
            elif kind == mujoco.mjtJoint.mjJNT_SLIDE and np.isclose(axis[1], 0) and np.isclose(np.linalg.norm(axis), 1):
                self._joints[model.jnt_bodyid[joint]].append(
                    ("slide", address, 0.0, tensor(axis)))
            else:
                raise NotImplementedError("a joint is neither a y hinge nor an xz slide")

    def body_offset(self, name: str) -> torch.Tensor:
        """A body's origin in its parent's frame."""
        return self._offsets[self._body_ids[name]]

    @staticmethod
    def _rotate_rate(angle: torch.Tensor, rate: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
        """Time derivative of ``rotate_y(angle, local)`` when ``angle`` changes at ``rate``."""
        c, s, w = torch.cos(angle).unsqueeze(-1), torch.sin(angle).unsqueeze(-1), rate.unsqueeze(-1)
        x_rate, z_rate = w * (-s * local[0] + c * local[2]), w * (-c * local[0] - s * local[2])
        return torch.cat([x_rate, torch.zeros_like(c), z_rate], -1)

    def body_frames(self, qpos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """World positions of every body's origin ``[B, nbody, 3]`` (MuJoCo ``xpos``) and the
        angle of its frame about y ``[B, nbody]`` (``xmat`` is the rotation by it)."""
        positions, angles = [qpos.new_zeros(qpos.shape[0], 3)], [qpos.new_zeros(qpos.shape[0])]
        for body in range(1, len(self._parents)):
            parent = self._parents[body]
            angle = angles[parent]
            position = positions[parent] + rotate_y(angle, self._offsets[body])
            for kind, address, sign, vector in self._joints[body]:
                if kind == "slide":
                    position = position + rotate_y(angle, vector) * qpos[:, address].unsqueeze(-1)
                else:  # hinge about +-y through its anchor
                    new_angle = angle + sign * qpos[:, address]
                    position = position + rotate_y(angle, vector) - rotate_y(new_angle, vector)
                    angle = new_angle
            positions.append(position)
            angles.append(angle)
        return torch.stack(positions, dim=1), torch.stack(angles, dim=1)

    def hinge_sign(self, address: int) -> float:
        """The axis sign (+1 or -1 about y) of the hinge at ``qpos[address]``.

        :raises NotImplementedError: no hinge has that address.
        """
        for joints in self._joints:
            for kind, joint_address, sign, _ in joints:
                if kind == "hinge" and joint_address == address:
                    return sign
        raise NotImplementedError(f"qpos[{address}] is not a hinge")

    def body_id(self, name: str) -> int:
        """A body's index by name."""
        return self._body_ids[name]

    def body_coms(self, qpos: torch.Tensor, qvel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """World positions and velocities of every body's centre of mass, each ``[B, nbody, 3]``.

        Velocities are the exact time derivatives of the positions (chain rule through the
        tree), for ``qvel`` the rates of ``qpos`` (true for hinge and slide joints).
        """
        zeros3, zeros = qpos.new_zeros(qpos.shape[0], 3), qpos.new_zeros(qpos.shape[0])
        positions, velocities, angles, rates = [zeros3], [zeros3], [zeros], [zeros]
        coms, com_velocities = [zeros3], [zeros3]
        for body in range(1, len(self._parents)):
            parent = self._parents[body]
            angle, rate = angles[parent], rates[parent]
            position = positions[parent] + rotate_y(angle, self._offsets[body])
            velocity = velocities[parent] + self._rotate_rate(angle, rate, self._offsets[body])
            for kind, address, sign, vector in self._joints[body]:
                q, qdot = qpos[:, address], qvel[:, address]
                if kind == "slide":
                    position = position + rotate_y(angle, vector) * q.unsqueeze(-1)
                    velocity = (velocity + self._rotate_rate(angle, rate, vector) * q.unsqueeze(-1)
                                + rotate_y(angle, vector) * qdot.unsqueeze(-1))
                else:  # hinge about +-y through its anchor
                    new_angle, new_rate = angle + sign * q, rate + sign * qdot
                    position = position + rotate_y(angle, vector) - rotate_y(new_angle, vector)
                    velocity = (velocity + self._rotate_rate(angle, rate, vector)
                                - self._rotate_rate(new_angle, new_rate, vector))
                    angle, rate = new_angle, new_rate
            positions.append(position)
            velocities.append(velocity)
            angles.append(angle)
            rates.append(rate)
            coms.append(position + rotate_y(angle, self._com_offsets[body]))
            com_velocities.append(velocity + self._rotate_rate(angle, rate, self._com_offsets[body]))
        return torch.stack(coms, dim=1), torch.stack(com_velocities, dim=1)

    def subtree_com_velocity(self, root: int, qpos: torch.Tensor, qvel: torch.Tensor) -> torch.Tensor:
        """Velocity of the centre of mass of ``root``'s subtree, ``[B, 3]`` (MuJoCo ``subtreelinvel``)."""
        members = [b for b in range(len(self._parents)) if self._in_subtree(b, root)]
        weights = self.masses[members] / self.masses[members].sum()
        _, velocities = self.body_coms(qpos, qvel)
        return (velocities[:, members] * weights.unsqueeze(-1)).sum(1)

    def _in_subtree(self, body: int, root: int) -> bool:
        while body != 0 and body != root:
            body = self._parents[body]
        return body == root
