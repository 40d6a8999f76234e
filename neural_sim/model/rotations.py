"""Orientation kinematics of free and ball joints, in torch.

A free or ball joint's orientation is a unit quaternion ``(w, x, y, z)`` in ``qpos`` and
its angular velocity ``omega`` (body frame) in ``qvel``; its rate is ``dq/dt = q * (0,
omega) / 2``, not ``v``. :class:`RotationKinematics` gives a layout's position rate, keeps
its quaternions on the unit sphere after each integration step, and supplies the
invariant inputs networks see: gravity in the body frame instead of the quaternion (a
robot on flat ground moves alike whatever its heading), and a free joint's linear
velocity in the body frame instead of the world frame.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

from neural_sim.errors import InputError
from neural_sim.model.config import StateLayout

#: How far from 1 a quaternion's norm may be in a state a user passes in. MuJoCo reads a
#: quaternion ``q`` as ``q / |q|`` and renormalises it every step, and some stock resets
#: leave it off the sphere (Gymnasium's Ant adds uniform noise of 0.1 to each component:
#: norms 0.8-1.2); the model reads it the same way. Further off, the state is most likely
#: not what its author meant (a zero quaternion, entries in the wrong place).
QUATERNION_NORM_TOLERANCE = 0.25


def quaternion_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product of ``[..., 4]`` quaternions ``(w, x, y, z)``."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], dim=-1)


def rotation_matrix(quaternion: torch.Tensor) -> torch.Tensor:
    """``[..., 3, 3]`` rotation (body to world) of ``[..., 4]`` unit quaternions."""
    w, x, y, z = quaternion.unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, dim=-1).unflatten(-1, (3, 3))


def rotate(quaternion: torch.Tensor, vector: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """``[..., 3]`` vectors turned by ``[..., 4]`` unit quaternions (body to world), or by
    their inverses (world to body): ``v + 2 w (u x v) + 2 u x (u x v)``, cheaper than
    forming the matrix."""
    w, u = quaternion[..., :1], quaternion[..., 1:]
    if inverse:
        u = -u
    t = 2.0 * torch.linalg.cross(u, vector, dim=-1)
    return vector + w * t + torch.linalg.cross(u, t, dim=-1)


def up_in_body_frame(quaternion: torch.Tensor) -> torch.Tensor:
    """The world's +z axis in the body frame of ``[..., 4]`` unit quaternions (the last row
    of the rotation matrix): what gravity looks like from the body, heading left out."""
    w, x, y, z = quaternion.unbind(-1)
    return torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], dim=-1)


def angle_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotation angle in radians between ``[..., 4]`` unit quaternions (``q`` and ``-q``
    are the same orientation)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    # |a - b| = 2 sin(angle / 4) with b on a's side: exact near 0, where arccos(a . b) is not.
    aligned = np.where(np.sum(a * b, axis=-1, keepdims=True) < 0, -b, b)
    chord = np.linalg.norm(a - aligned, axis=-1)
    return 4.0 * np.arcsin(np.clip(chord / 2, 0.0, 1.0))


class RotationKinematics(nn.Module):
    """The quaternion side of a layout with free or ball joints (none: every method is the
    plain ``dq/dt = v`` case, and :attr:`active` is ``False``)."""

    scalar_qpos: torch.Tensor
    scalar_dofs: torch.Tensor
    quaternion_qpos: torch.Tensor
    angular_dofs: torch.Tensor
    rate_order: torch.Tensor
    free_quaternions: torch.Tensor
    ball_quaternions: torch.Tensor
    free_linear_dofs: torch.Tensor

    def __init__(self, layout: StateLayout) -> None:
        super().__init__()
        self.layout = layout
        self.active = bool(layout.rotation_joints)
        joints = layout.rotation_joints
        if layout.nq != layout.nv + len(joints):
            raise ValueError(
                f"nq={layout.nq} must equal nv={layout.nv} plus one per free or ball joint ({len(joints)}): "
                f"{layout.describe()}"
            )
        scalar_q, scalar_v = layout.scalar_qpos_dofs()
        quaternion_q = list(layout.quaternion_qpos)
        angular = [d for joint in joints for d in joint.angular_dofs]
        buffer = lambda name, values: self.register_buffer(  # noqa: E731
            name, torch.tensor(values, dtype=torch.long), persistent=False)
        buffer("scalar_qpos", list(scalar_q))
        buffer("scalar_dofs", list(scalar_v))
        buffer("quaternion_qpos", quaternion_q)
        buffer("angular_dofs", angular)
        # [scalar rates, quaternion rates] is in this order of qpos; rate_order puts it back.
        buffer("rate_order", np.argsort(list(scalar_q) + quaternion_q).tolist())
        free = [j for j in joints if j.kind == "free"]
        ball = [j for j in joints if j.kind == "ball"]
        buffer("free_quaternions", [i for j in free for i in j.quaternion_qpos])
        buffer("ball_quaternions", [i for j in ball for i in j.quaternion_qpos])
        buffer("free_linear_dofs", [d for j in free for d in j.linear_dofs])
        #: Orientation features: 3 per free joint (gravity in its body frame), 6 per ball
        #: joint (two columns of its rotation: all of it matters below a free root).
        self.orientation_size = 3 * len(free) + 6 * len(ball)

    # -- integration --------------------------------------------------------------------
    def position_rate(self, q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``dq/dt`` ``[..., nq]`` for velocities ``v`` ``[..., nv]``."""
        if not self.active:
            return v
        quaternions = q[..., self.quaternion_qpos].unflatten(-1, (-1, 4))
        omega = v[..., self.angular_dofs].unflatten(-1, (-1, 3))
        # q * (0, omega) / 2 = (-u . omega, w omega + u x omega) / 2 for q = (w, u).
        w, u = quaternions[..., :1], quaternions[..., 1:]
        quaternion_rate = 0.5 * torch.cat(
            [-(u * omega).sum(-1, keepdim=True), w * omega + torch.linalg.cross(u, omega, dim=-1)], dim=-1)
        rates = torch.cat([v[..., self.scalar_dofs], quaternion_rate.flatten(-2)], dim=-1)
        return rates[..., self.rate_order]

    def project(self, state: torch.Tensor) -> torch.Tensor:
        """``state`` ``[..., nq + nv]`` with each quaternion scaled back to unit norm: the
        integrator's step leaves the sphere by O(h^5); this keeps the state on it over any
        horizon without flipping any quaternion's sign."""
        if not self.active:
            return state
        quaternions = state[..., self.quaternion_qpos].unflatten(-1, (-1, 4))
        unit = quaternions / torch.linalg.vector_norm(quaternions, dim=-1, keepdim=True)
        return state.index_copy(-1, self.quaternion_qpos, unit.flatten(-2))

    # -- invariant network inputs -------------------------------------------------------
    def orientation_features(self, q: torch.Tensor) -> torch.Tensor:
        """``[..., orientation_size]``: each free joint's world up axis in its body frame
        (the last row of its rotation; heading drops out), each ball joint's first two
        rotation columns."""
        parts = []
        if len(self.free_quaternions):
            parts.append(up_in_body_frame(q[..., self.free_quaternions].unflatten(-1, (-1, 4))).flatten(-2))
        if len(self.ball_quaternions):
            rotations = rotation_matrix(q[..., self.ball_quaternions].unflatten(-1, (-1, 4)))
            parts.append(rotations[..., :, :2].flatten(-3))
        return torch.cat(parts, dim=-1) if parts else q[..., :0]

    def _turn_free_linear(self, q: torch.Tensor, v: torch.Tensor, inverse: bool) -> torch.Tensor:
        if not len(self.free_linear_dofs):
            return v
        quaternions = q[..., self.free_quaternions].unflatten(-1, (-1, 4))
        turned = rotate(quaternions, v[..., self.free_linear_dofs].unflatten(-1, (-1, 3)), inverse)
        return v.index_copy(-1, self.free_linear_dofs, turned.flatten(-2))

    def to_body_frame(self, q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``v`` with each free joint's linear velocity turned into its body frame (a
        vector field's velocity inputs and acceleration outputs live in this frame)."""
        return self._turn_free_linear(q, v, inverse=True)

    def to_world_frame(self, q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`to_body_frame`."""
        return self._turn_free_linear(q, v, inverse=False)


def body_frame_states(states: np.ndarray, layout: StateLayout) -> np.ndarray:
    """``[..., nq + nv]`` states with each free joint's linear velocity in its body frame
    (NumPy, float64): the frame in which a state's range means the same whatever the
    robot's heading (the data domain checks states in it). Unchanged without free joints."""
    if not any(joint.kind == "free" for joint in layout.rotation_joints):
        return states
    flat = torch.from_numpy(np.array(states, dtype=np.float64).reshape(-1, layout.state_size))
    return body_frame_tensor(flat, layout).numpy().reshape(np.shape(states))


def body_frame_tensor(states: torch.Tensor, layout: StateLayout) -> torch.Tensor:
    """:func:`body_frame_states` of ``[N, nq + nv]`` states in torch, on their device (float64;
    a new tensor where anything turns)."""
    if not any(joint.kind == "free" for joint in layout.rotation_joints):
        return states
    # The same turn the networks' inputs get (RotationKinematics.to_body_frame), in float64.
    out = states.to(torch.float64, copy=True)
    kinematics = _double_kinematics(layout, str(states.device))
    with torch.no_grad():
        q = kinematics.project(out)[:, : layout.nq]  # read q as q / |q|, as MuJoCo does
        out[:, layout.nq :] = kinematics.to_body_frame(q, out[:, layout.nq :])
    return out


@functools.lru_cache(maxsize=16)
def _double_kinematics(layout: StateLayout, device: str = "cpu") -> RotationKinematics:
    """One float64 :class:`RotationKinematics` per layout and device: the data domain checks every step."""
    return RotationKinematics(layout).double().to(device)


def check_quaternions(states: np.ndarray, layout: StateLayout, name: str) -> None:
    """Raise unless every quaternion in ``states`` ``[..., nq + nv]`` has unit norm.

    :raises InputError: naming the joint, its entries and the norm found.
    """
    for joint in layout.rotation_joints:
        quaternion = np.asarray(states)[..., list(joint.quaternion_qpos)]
        norms = np.linalg.norm(quaternion, axis=-1)
        bad = ~(np.abs(norms - 1.0) <= QUATERNION_NORM_TOLERANCE)
        if bad.any():
            where = np.argwhere(bad)[0]
            at = "".join(f"[{int(i)}]" for i in where)
            raise InputError(
                f"{name}{at}: the quaternion of {joint.kind} joint {joint.name!r} (qpos[{joint.quaternion_qpos[0]}:"
                f"{joint.quaternion_qpos[-1] + 1}], w x y z) has norm {float(np.asarray(norms)[tuple(where)]):.6g}; "
                f"it must be a unit quaternion (norm 1 within {QUATERNION_NORM_TOLERANCE})"
            )


__all__ = [
    "QUATERNION_NORM_TOLERANCE",
    "RotationKinematics",
    "angle_between",
    "body_frame_states",
    "check_quaternions",
    "quaternion_multiply",
    "rotate",
    "rotation_matrix",
    "up_in_body_frame",
]
