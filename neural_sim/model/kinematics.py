"""Contact features in torch: heights above the floor, and their rates, of the points of
a planar robot that can touch it (closed-form forward kinematics, see
:class:`~neural_sim.model.config.ContactKinematics`)."""

from __future__ import annotations

import torch
from torch import nn

from neural_sim.model.config import ContactKinematics


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
