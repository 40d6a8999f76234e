"""Contact features in torch: heights above the floor, and their rates, of the points of
a robot that can touch it. Planar robots have a closed form
(:class:`~neural_sim.model.config.ContactKinematics`); any other robot goes through its
body tree (:class:`~neural_sim.model.config.ContactTree`). :func:`contact_features_module`
picks the one a layout carries."""

from __future__ import annotations

import typing

import torch
from torch import nn

from neural_sim.model.config import ContactKinematics, ContactTree, StateLayout
from neural_sim.model.rotations import rotation_matrix


class ContactHeights(nn.Module):
    """``(q, v) -> [heights, vertical velocities]``, ``[..., 2 P]``, in metres and m/s.

    Differentiable, a handful of tensor operations whatever the robot, so it runs inside
    every evaluation of the vector field.
    """

    angle_weights: torch.Tensor
    angle_offsets: torch.Tensor
    sin_weights: torch.Tensor
    cos_weights: torch.Tensor
    slide_weights: torch.Tensor
    offsets: torch.Tensor

    def __init__(self, kinematics: ContactKinematics) -> None:
        super().__init__()
        table = lambda rows: torch.tensor(rows, dtype=torch.float32)  # noqa: E731
        self.register_buffer("angle_weights", table(kinematics.angle_weights), persistent=False)
        self.register_buffer("angle_offsets", table(kinematics.angle_offsets), persistent=False)
        self.register_buffer("sin_weights", table(kinematics.sin_weights), persistent=False)
        self.register_buffer("cos_weights", table(kinematics.cos_weights), persistent=False)
        self.register_buffer("slide_weights", table(kinematics.slide_weights), persistent=False)
        self.register_buffer("offsets", table(kinematics.offsets), persistent=False)
        self.size = 2 * len(kinematics.points)

    def forward(self, q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Heights then vertical velocities of the contact points."""
        angles = torch.addmm(self.angle_offsets, q.reshape(-1, q.shape[-1]), self.angle_weights)
        rates = v.reshape(-1, v.shape[-1]) @ self.angle_weights
        sin, cos = torch.sin(angles), torch.cos(angles)
        q2, v2 = q.reshape(-1, q.shape[-1]), v.reshape(-1, v.shape[-1])
        heights = torch.addmm(self.offsets, q2, self.slide_weights) + sin @ self.sin_weights + cos @ self.cos_weights
        speeds = v2 @ self.slide_weights + (cos * rates) @ self.sin_weights - (sin * rates) @ self.cos_weights
        return torch.cat([heights, speeds], dim=-1).reshape(*q.shape[:-1], self.size)


# ContactTreeHeights keeps the batch as the last dimension (a rotation is [3, 3, n], a
# vector [3, n]) and multiplies 3 x 3 matrices elementwise: on CPU that is about three
# times faster than torch's batched matmul on such small matrices.


def _turn(rotation: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """``rotation @ other`` for ``[3, 3, n]`` batches of 3 x 3 matrices."""
    return (rotation[:, :, None] * other[None]).sum(1)


def _apply(rotation: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
    """``rotation @ vector`` for a ``[3, 3, n]`` batch and a ``[3, n]`` or ``[3, 1]`` vector."""
    return (rotation * vector[None]).sum(1)


class ContactTreeHeights(nn.Module):
    """``(q, v) -> [heights, vertical velocities]``, ``[..., 2 P]``, by forward kinematics
    over the body tree, as MuJoCo's ``mj_kinematics`` places bodies.

    Positions: each body's frame follows from its parent's, its offset and its joints; a
    hinge turns the frame about its anchor by ``q - reference`` (Rodrigues' formula, for all
    hinges at once), a slide moves it along its axis, a free joint sets it from ``qpos``
    (quaternion normalised). Velocities: a point moves with every joint between it and the
    world, ``dz/dt = sum_j (axis_j x (x - anchor_j))_z dq_j`` over its hinges, ``axis_j,z
    dq_j`` over its slides, plus its free joint's linear velocity and angular velocity (body
    frame) about the free body's origin: one batched sum instead of a chain of velocities.
    Differentiable.
    """

    point_positions: torch.Tensor
    point_offsets: torch.Tensor
    point_bodies: torch.Tensor
    joint_qpos: torch.Tensor
    joint_dofs: torch.Tensor
    joint_references: torch.Tensor
    skews: torch.Tensor
    skews_squared: torch.Tensor
    is_hinge: torch.Tensor
    moves_points: torch.Tensor
    free_moves_points: torch.Tensor

    def __init__(self, tree: ContactTree) -> None:
        super().__init__()
        self.tree = tree
        self.size = 2 * len(tree.points)
        table = lambda values: torch.tensor(values, dtype=torch.float32)  # noqa: E731
        joints = [(b, joint) for b, body in enumerate(tree.bodies) for joint in body.joints if joint.kind != "free"]
        frees = [(b, joint) for b, body in enumerate(tree.bodies) for joint in body.joints if joint.kind == "free"]
        #: Per body: (free joint or None, [(index among the hinges and slides, joint)]).
        self._plan = [(next((j for c, j in frees if c == b), None),
                       [(k, joint) for k, (c, joint) in enumerate(joints) if c == b]) for b in range(len(tree.bodies))]
        self._frees = [(b, joint.dof) for b, joint in frees]
        for b, body in enumerate(tree.bodies):
            self.register_buffer(f"position_{b}", table(body.position), persistent=False)
            self.register_buffer(f"rotation_{b}", rotation_matrix(table(body.quaternion)), persistent=False)
        for k, (_, joint) in enumerate(joints):
            self.register_buffer(f"axis_{k}", table(joint.axis), persistent=False)
            self.register_buffer(f"anchor_{k}", table(joint.anchor), persistent=False)
        self._anchored = [any(x != 0.0 for x in joint.anchor) for _, joint in joints]
        axes = table([joint.axis for _, joint in joints]).reshape(-1, 3)
        skews = torch.zeros(len(joints), 3, 3)
        skews[:, 0, 1], skews[:, 0, 2], skews[:, 1, 2] = -axes[:, 2], axes[:, 1], -axes[:, 0]
        skews = skews - skews.transpose(1, 2)
        self.register_buffer("skews", skews, persistent=False)
        self.register_buffer("skews_squared", skews @ skews, persistent=False)
        indices = lambda values: torch.tensor(values, dtype=torch.long)  # noqa: E731
        self.register_buffer("joint_qpos", indices([j.qpos for _, j in joints]), persistent=False)
        self.register_buffer("joint_dofs", indices([j.dof for _, j in joints]), persistent=False)
        self.register_buffer("joint_references", table([j.reference for _, j in joints]), persistent=False)
        self.register_buffer("is_hinge", table([j.kind == "hinge" for _, j in joints]), persistent=False)
        # moves_points[k, p]: hinge or slide k lies between point p and the world;
        # free_moves_points[f, p] the same for the free joints.
        ancestors: list[set[int]] = []  # each body and those it hangs from (parents come first)
        for b, body in enumerate(tree.bodies):
            ancestors.append({b} | (ancestors[body.parent] if body.parent >= 0 else set()))
        moves = lambda owners: table([[float(owner in ancestors[b]) for b in tree.point_bodies]  # noqa: E731
                                      for owner in owners]).reshape(len(owners), len(tree.points))
        self.register_buffer("moves_points", moves([c for c, _ in joints]), persistent=False)
        self.register_buffer("free_moves_points", moves([c for c, _ in frees]), persistent=False)
        self.register_buffer("point_positions", table(tree.point_positions), persistent=False)
        self.register_buffer("point_offsets", table(tree.point_offsets), persistent=False)
        self.register_buffer("point_bodies", torch.tensor(tree.point_bodies, dtype=torch.long), persistent=False)

    def _buffer(self, name: str) -> torch.Tensor:
        return typing.cast(torch.Tensor, getattr(self, name))

    def forward(self, q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Heights then vertical velocities of the contact points."""
        batch = q.shape[:-1]
        qt, vt = q.reshape(-1, q.shape[-1]).T, v.reshape(-1, v.shape[-1]).T  # [nq, n], [nv, n]
        n = qt.shape[1]
        angles = qt[self.joint_qpos] - self.joint_references[:, None]  # [J, n]
        sin, cos = torch.sin(angles)[:, None, None], torch.cos(angles)[:, None, None]
        turns = (torch.eye(3, dtype=qt.dtype, device=qt.device)[..., None] + sin * self.skews[..., None]
                 + (1 - cos) * self.skews_squared[..., None])  # [J, 3, 3, n]
        origins: list[torch.Tensor] = []  # per body, world frame: [3, n]
        rotations: list[torch.Tensor] = []  # [3, 3, n]
        axes: list[torch.Tensor] = []  # per hinge or slide, world frame: [3, n]
        anchors: list[torch.Tensor] = []
        for b, body in enumerate(self.tree.bodies):
            free, joints = self._plan[b]
            offset, turn = self._buffer(f"position_{b}")[:, None], self._buffer(f"rotation_{b}")[..., None]
            if free is not None:
                quaternion = qt[free.qpos + 3: free.qpos + 7]
                r = rotation_matrix((quaternion / quaternion.norm(dim=0, keepdim=True)).T).permute(1, 2, 0)
                p = qt[free.qpos: free.qpos + 3]
            elif body.parent < 0:
                p, r = offset.expand(3, n), turn.expand(3, 3, n)
            else:
                p = origins[body.parent] + _apply(rotations[body.parent], offset)
                r = _turn(rotations[body.parent], turn)
            for k, joint in joints:
                axes.append(_apply(r, self._buffer(f"axis_{k}")[:, None]))
                if joint.kind == "slide":
                    anchors.append(p)
                    p = p + axes[-1] * angles[k]
                    continue
                if not self._anchored[k]:
                    anchors.append(p)
                    r = _turn(r, turns[k])
                    continue
                anchor_local = self._buffer(f"anchor_{k}")[:, None]
                anchors.append(p + _apply(r, anchor_local))
                r = _turn(r, turns[k])
                p = anchors[-1] - _apply(r, anchor_local)
            origins.append(p)
            rotations.append(r)
        at = self.point_bodies
        arms = (torch.stack(rotations)[at] * self.point_positions[:, None, :, None]).sum(2)  # [P, 3, n]
        points = torch.stack(origins)[at] + arms
        px, py = points[:, 0], points[:, 1]  # [P, n]
        heights = points[:, 2] - self.point_offsets[:, None]
        # Vertical velocity of each point, summed over the joints below it: a hinge adds
        # (axis x (x - anchor))_z dq = (ax y - ay x + ay anchor_x - ax anchor_y) dq, a slide
        # axis_z dq; grouped by point coordinate, each sum is one [P, J] @ [J, n] product.
        speeds = torch.zeros_like(heights)
        if axes:
            axis, anchor = torch.stack(axes, 1), torch.stack(anchors, 1)  # [3, J, n]
            rates = vt[self.joint_dofs]  # [J, n]
            per_joint = torch.stack([axis[0], axis[1], axis[1] * anchor[0] - axis[0] * anchor[1]]) * rates
            hinged = self.moves_points.T @ (per_joint * self.is_hinge[:, None])  # [3, P, n]
            slid = self.moves_points.T @ (axis[2] * rates * (1 - self.is_hinge[:, None]))  # [P, n]
            speeds = py * hinged[0] - px * hinged[1] + hinged[2] + slid
        for f, (b, dof) in enumerate(self._frees):
            spin, origin = _apply(rotations[b], vt[dof + 3: dof + 6]), origins[b]  # [3, n]
            turning = spin[0] * (py - origin[1]) - spin[1] * (px - origin[0])
            speeds = speeds + self.free_moves_points[f][:, None] * (vt[dof + 2] + turning)
        return torch.cat([heights, speeds]).T.reshape(*batch, self.size)


def contact_features_module(layout: StateLayout) -> ContactHeights | ContactTreeHeights | None:
    """The module that computes a layout's contact features: the closed form for a planar
    robot, the body tree for any other, ``None`` for a robot with neither."""
    if layout.contact_kinematics is not None:
        return ContactHeights(layout.contact_kinematics)
    if layout.contact_tree is not None:
        return ContactTreeHeights(layout.contact_tree)
    return None
