"""Vector fields ``d(q, v)/dt = (v, a(q, v, u))`` learned from data.

Two architectures share one interface (:class:`VectorField`):

- :class:`MoSimField` -- the paper's rigid-body-shaped field
  ``a = M^-1(q) [B(q, v) + A(u)] + sum_i C_i(q, v, u)`` with ``M^-1 = L L^T`` and a
  strictly positive Cholesky diagonal, so ``M^-1`` is symmetric positive definite;
- :class:`ResidualField` -- a plain ResNet ``a = R(q, v, u)``, the ablation baseline.

Fields take raw physics units and return raw accelerations; normalisation happens
inside, from constants stored in the checkpoint's config.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from neural_sim.model.config import ModelConfig, Normalisation, StateLayout
from neural_sim.model.kinematics import ContactHeights, ContactTreeHeights, contact_features_module
from neural_sim.model.networks import MLP, ResNet
from neural_sim.model.rotations import RotationKinematics

# softplus(x + _UNIT_DIAGONAL) == 1 at x == 0: L starts as the identity.
_UNIT_DIAGONAL = math.log(math.e - 1.0)
_DIAGONAL_FLOOR = 1e-3
# Correctors and residual nets start near zero so an untrained field is gentle.
_SMALL_OUTPUT_GAIN = 0.1


class StateFeatures(nn.Module):
    """Maps raw ``(q, v)`` and actions to the unit-scale inputs the networks see.

    Unlimited hinge angles become ``(sin, cos)``; translation-invariant coordinates are
    dropped; a free joint's quaternion becomes gravity in its body frame and a ball joint's
    two columns of its rotation (:class:`~neural_sim.model.rotations.RotationKinematics`),
    and a free joint's linear velocity is seen in its body frame; all other positions and
    velocities are standardised; actions are mapped from their bounds to ``[-1, 1]``. With
    ``contact_features``, the standardised heights and vertical velocities of the points
    that can touch the floor join the velocities (:meth:`contacts`).

    :raises ValueError: contact features for a layout without contact kinematics, or a
        normalisation without their statistics.
    """

    angle_idx: torch.Tensor
    linear_idx: torch.Tensor
    q_mean: torch.Tensor
    q_std: torch.Tensor
    v_mean: torch.Tensor
    v_std: torch.Tensor
    u_center: torch.Tensor
    u_half_range: torch.Tensor
    input_center: torch.Tensor
    input_half_range: torch.Tensor
    #: Registered only with ``contact_features``.
    contact_mean: torch.Tensor
    contact_std: torch.Tensor

    def __init__(self, layout: StateLayout, normalisation: Normalisation, contact_features: bool = False) -> None:
        super().__init__()
        self.contact_heights: ContactHeights | ContactTreeHeights | None = None
        self.contact_size = 0
        if contact_features:
            self.contact_heights = contact_features_module(layout)
            if self.contact_heights is None:
                raise ValueError("contact_features needs a layout with contact_kinematics or contact_tree "
                                 "(a robot that can touch a floor plane)")
            self.contact_size = self.contact_heights.size
            sizes = {len(normalisation.contact_mean), len(normalisation.contact_std)}
            if sizes != {self.contact_size}:
                raise ValueError(f"normalisation needs contact_mean and contact_std of length {self.contact_size}")
            self.register_buffer("contact_mean", torch.tensor(normalisation.contact_mean, dtype=torch.float32),
                                 persistent=False)
            self.register_buffer("contact_std", torch.tensor(normalisation.contact_std, dtype=torch.float32),
                                 persistent=False)
        self.rotations = RotationKinematics(layout)
        angle = set(layout.angle_qpos)
        skip = angle | set(layout.invariant_qpos) | set(layout.quaternion_qpos)
        linear = [i for i in range(layout.nq) if i not in skip]
        self.register_buffer("angle_idx", torch.tensor(sorted(angle), dtype=torch.long), persistent=False)
        self.register_buffer("linear_idx", torch.tensor(linear, dtype=torch.long), persistent=False)
        q_mean = torch.tensor(normalisation.q_mean, dtype=torch.float32)
        q_std = torch.tensor(normalisation.q_std, dtype=torch.float32)
        self.register_buffer("q_mean", q_mean[linear], persistent=False)
        self.register_buffer("q_std", q_std[linear], persistent=False)
        self.register_buffer("v_mean", torch.tensor(normalisation.v_mean, dtype=torch.float32), persistent=False)
        self.register_buffer("v_std", torch.tensor(normalisation.v_std, dtype=torch.float32), persistent=False)
        low = torch.tensor(layout.action_low, dtype=torch.float32)
        high = torch.tensor(layout.action_high, dtype=torch.float32)
        self.register_buffer("u_center", (high + low) / 2, persistent=False)
        self.register_buffer("u_half_range", (high - low) / 2, persistent=False)
        # The model's per-step input is the action, then the actuator activations (if the
        # layout has them), each mapped from its range to [-1, 1].
        if layout.activations is not None:
            low = torch.cat([low, torch.tensor(layout.activations.low, dtype=torch.float32)])
            high = torch.cat([high, torch.tensor(layout.activations.high, dtype=torch.float32)])
        self.register_buffer("input_center", (high + low) / 2, persistent=False)
        self.register_buffer("input_half_range", (high - low) / 2, persistent=False)
        self.position_size = 2 * len(angle) + len(linear) + self.rotations.orientation_size
        self.velocity_size = layout.nv

    @property
    def foldable(self) -> bool:
        """Whether the inputs are plain functions of each coordinate (no contact features,
        no quaternions): what the fused layouts of :mod:`neural_sim.model.fused` fold."""
        return not self.contact_size and not self.rotations.active

    def positions(self, q: torch.Tensor) -> torch.Tensor:
        """Features of the positions, ``[..., position_size]``."""
        angles = q[..., self.angle_idx]
        linear = (q[..., self.linear_idx] - self.q_mean) / self.q_std
        parts = [torch.sin(angles), torch.cos(angles), linear]
        if self.rotations.active:
            parts.append(self.rotations.orientation_features(q))
        return torch.cat(parts, dim=-1)

    def velocities(self, v: torch.Tensor) -> torch.Tensor:
        """Standardised velocities ``[..., nv]`` (already in the body frame for a free joint's
        linear velocity: :meth:`body_velocities`)."""
        return (v - self.v_mean) / self.v_std

    def body_velocities(self, q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Standardised velocities of the state ``(q, v)``, free joints' linear velocity
        turned into their body frames."""
        return self.velocities(self.rotations.to_body_frame(q, v))

    def actions(self, u: torch.Tensor) -> torch.Tensor:
        """Actions mapped from their bounds to ``[-1, 1]``."""
        return (u - self.u_center) / self.u_half_range

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The model's per-step inputs ``[..., nu + na]`` (action, then activations) mapped
        from their ranges to ``[-1, 1]``."""
        return (x - self.input_center) / self.input_half_range

    def state(self, q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Features of the whole state: positions, velocities, then contact features if on."""
        parts = [self.positions(q), self.body_velocities(q, v)]
        if self.contact_heights is not None:
            parts.append((self.contact_heights(q, v) - self.contact_mean) / self.contact_std)
        return torch.cat(parts, dim=-1)


class VectorField(nn.Module):
    """Base class: ``acceleration(q, v, context)`` with ``context = encode_action(u)``.

    The action (with the actuator activations at the start of the step, when the layout has
    them: the per-step input ``u`` is ``[nu + na]``) is held constant over a control step
    (zero-order hold), so whatever depends on it alone is computed once per step by
    :meth:`encode_action`.
    """

    acc_std: torch.Tensor

    def __init__(self, layout: StateLayout, normalisation: Normalisation, contact_features: bool = False) -> None:
        super().__init__()
        self.layout = layout
        self.normalisation = normalisation
        self.features = StateFeatures(layout, normalisation, contact_features)
        self.register_buffer(
            "acc_std", torch.tensor(normalisation.acc_std, dtype=torch.float32), persistent=False
        )

    def encode_action(self, u: torch.Tensor) -> torch.Tensor:
        """Per-step input context (default: the scaled input itself)."""
        return self.features.inputs(u)

    def acceleration(self, q: torch.Tensor, v: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Raw ``dv/dt`` at ``(q, v)`` under the action encoded in ``context``, with free
        joints' linear acceleration in their body frames (:meth:`forward` turns it back)."""
        raise NotImplementedError

    def forward(self, state: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """``d state / dt`` for ``state = [q, v]``: ``dq/dt = v`` except for quaternions
        (``q * (0, omega) / 2``)."""
        q, v = state[..., : self.layout.nq], state[..., self.layout.nq :]
        rotations = self.features.rotations
        acceleration = self.acceleration(q, v, context)
        if rotations.active:
            acceleration = rotations.to_world_frame(q, acceleration)
        lag = self.layout.velocity_lag
        velocity = v + lag * acceleration if lag else v
        return torch.cat([rotations.position_rate(q, velocity), acceleration], dim=-1)

    def project(self, state: torch.Tensor) -> torch.Tensor:
        """``state`` with its quaternions back on the unit sphere (after an integration step)."""
        return self.features.rotations.project(state)


class MoSimField(VectorField):
    """``a = D^1/2 L L^T D^1/2 [B(q, v) + A(u)] + D sum_i C_i(q, v, u)``, D = diag(acc_std).

    ``D^1/2 L`` is itself lower triangular with a positive diagonal, so the effective
    inverse mass matrix keeps the paper's ``L L^T`` form while the networks work at unit
    scale.
    """

    is_diagonal: torch.Tensor
    tril_scatter: torch.Tensor

    def __init__(self, layout: StateLayout, normalisation: Normalisation, config: ModelConfig) -> None:
        super().__init__(layout, normalisation, config.contact_features)
        self.config = config
        nv, nu = layout.nv, layout.input_size
        # Contact features count as velocity-side inputs: B(q, v) and the correctors see them.
        pos, vel = self.features.position_size, self.features.velocity_size + self.features.contact_size
        self.position_encoder = ResNet(pos, nv * (nv + 1) // 2, config.position_encoder, config.activation, 0.1)
        self.state_encoder = ResNet(pos + vel, nv, config.state_encoder, config.activation, _SMALL_OUTPUT_GAIN)
        self.action_encoder = MLP(nu, nv, config.action_encoder, config.activation, _SMALL_OUTPUT_GAIN)
        self.correctors = nn.ModuleList(
            ResNet(pos + vel + nu, nv, size, config.activation, _SMALL_OUTPUT_GAIN) for size in config.correctors
        )
        #: Correctors evaluated by :meth:`network_outputs` (the first ``active_correctors``).
        #: Multi-stage training lowers it while later correctors output exactly zero, so
        #: their cost is skipped; everything else leaves it at ``len(correctors)``.
        self.active_correctors = len(self.correctors)
        rows, cols = torch.tril_indices(nv, nv)
        self.register_buffer("is_diagonal", rows == cols, persistent=False)
        # Places the nv(nv+1)/2 entries into a flattened nv x nv matrix by one matmul: no
        # shape-dependent indexing, so a traced step serves any batch size.
        scatter = torch.zeros(len(rows), nv * nv)
        scatter[torch.arange(len(rows)), rows * nv + cols] = 1.0
        self.register_buffer("tril_scatter", scatter, persistent=False)

    def cholesky_factor(self, q: torch.Tensor) -> torch.Tensor:
        """Lower-triangular L(q), ``[..., nv, nv]``, with diagonal >= 1e-3."""
        return self.cholesky_from_outputs(self.position_encoder(self.features.positions(q)))

    def cholesky_from_outputs(self, raw: torch.Tensor) -> torch.Tensor:
        """L from the position encoder's raw outputs: softplus + floor on the diagonal."""
        entries = torch.where(
            self.is_diagonal, nn.functional.softplus(raw + _UNIT_DIAGONAL) + _DIAGONAL_FLOOR, raw
        )
        nv = self.layout.nv
        return (entries @ self.tril_scatter).unflatten(-1, (nv, nv))

    def scaled_cholesky_factor(self, q: torch.Tensor) -> torch.Tensor:
        """``D^1/2 L(q)``: the Cholesky factor of the effective inverse mass matrix."""
        return self.acc_std.sqrt().unsqueeze(-1) * self.cholesky_factor(q)

    def inverse_mass_matrix(self, q: torch.Tensor) -> torch.Tensor:
        """The effective ``M^-1(q) = D^1/2 L L^T D^1/2``, symmetric positive definite."""
        scaled = self.scaled_cholesky_factor(q)
        return scaled @ scaled.transpose(-1, -2)

    def encode_action(self, u: torch.Tensor) -> torch.Tensor:
        """Context = ``[A(u), scaled u]``: A is evaluated once per control step."""
        scaled = self.features.inputs(u)
        return torch.cat([self.action_encoder(scaled), scaled], dim=-1)

    def network_outputs(
        self, qf: torch.Tensor, vf: torch.Tensor, scaled_u: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Raw outputs of the position encoder, the state encoder and each corrector."""
        state_and_action = torch.cat([qf, vf, scaled_u], dim=-1)
        return (
            self.position_encoder(qf),
            self.state_encoder(torch.cat([qf, vf], dim=-1)),
            [corrector(state_and_action) for corrector in self.correctors[: self.active_correctors]],
        )

    def predictor_parameters(self) -> list[nn.Parameter]:
        """Parameters of the rigid-body-shaped predictor: L(q), B(q, v) and A(u)."""
        return [
            *self.position_encoder.parameters(),
            *self.state_encoder.parameters(),
            *self.action_encoder.parameters(),
        ]

    def combine(self, raw_factor: torch.Tensor, force: torch.Tensor, corrections: list[torch.Tensor]) -> torch.Tensor:
        """``D^1/2 L L^T D^1/2 force + D sum(corrections)`` from the networks' outputs."""
        scaled_factor = self.acc_std.sqrt().unsqueeze(-1) * self.cholesky_from_outputs(raw_factor)
        # (D^1/2 L)(D^1/2 L)^T f without forming the matrix product.
        inner = scaled_factor.transpose(-1, -2) @ force.unsqueeze(-1)
        acc = (scaled_factor @ inner).squeeze(-1)
        if corrections:
            acc = acc + self.acc_std * torch.stack(corrections).sum(0)
        return acc

    def acceleration(self, q: torch.Tensor, v: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Raw ``dv/dt``."""
        nv = self.layout.nv
        action_force, scaled_u = context[..., :nv], context[..., nv:]
        features, pos = self.features.state(q, v), self.features.position_size
        raw, state_force, corrections = self.network_outputs(features[..., :pos], features[..., pos:], scaled_u)
        return self.combine(raw, state_force + action_force, corrections)


class ResidualField(VectorField):
    """``a = D R(q, v, u)``: a plain ResNet with no rigid-body structure."""

    def __init__(self, layout: StateLayout, normalisation: Normalisation, config: ModelConfig) -> None:
        super().__init__(layout, normalisation, config.contact_features)
        size = self.features.position_size + self.features.velocity_size + self.features.contact_size
        self.network = ResNet(size + layout.input_size, layout.nv, config.residual, config.activation,
                              _SMALL_OUTPUT_GAIN)

    def acceleration(self, q: torch.Tensor, v: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Raw ``dv/dt``."""
        return self.acc_std * self.network(torch.cat([self.features.state(q, v), context], dim=-1))


def build_vector_field(layout: StateLayout, normalisation: Normalisation, config: ModelConfig) -> VectorField:
    """Build the field named by ``config.architecture``.

    :raises ValueError: for an unknown architecture, or a layout whose ``nq`` is not ``nv``
        plus one per free or ball joint.
    """
    if config.architecture == "mosim":
        return MoSimField(layout, normalisation, config)
    if config.architecture == "residual":
        return ResidualField(layout, normalisation, config)
    raise ValueError(f"unknown architecture {config.architecture!r}; accepted: 'mosim', 'residual'")
