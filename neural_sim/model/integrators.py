"""Integrate a vector field over one control step: every integrator lives here.

:func:`integrate_step` runs torchdiffeq's ``rk4`` and ``dopri5`` (chosen by name like
torchdiffeq's own ``SOLVERS`` table); :class:`FixedStepRK4` is the same ``rk4`` written out
as a module, traced into one graph for environment steps. :class:`SemiImplicitEuler` is the
``euler`` method, the discrete-time head (torchdiffeq's ``euler`` is the explicit one).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, get_args

import torch

from neural_sim.errors import InputError, UnknownNameError
from neural_sim.model.config import IntegratorConfig, IntegratorMethod

if TYPE_CHECKING:
    from neural_sim.model.dynamics import VectorField
    from neural_sim.model.rotations import RotationKinematics

#: Methods accepted in :class:`~neural_sim.model.config.IntegratorConfig` (its literal type).
METHODS: tuple[str, ...] = get_args(IntegratorMethod)

StateDerivative = Callable[[torch.Tensor], torch.Tensor]


def check_integrator(config: IntegratorConfig) -> None:
    """Raise if ``config`` names an unknown method or bad settings.

    :raises UnknownNameError: an unknown method.
    :raises InputError: bad substeps or tolerances.
    """
    if config.method not in METHODS:
        raise UnknownNameError(f"unknown integrator {config.method!r}; accepted: {list(METHODS)}")
    if config.substeps < 1:
        raise InputError(f"integrator substeps must be >= 1, got {config.substeps}")
    if config.rtol <= 0 or config.atol <= 0:
        raise InputError(f"integrator tolerances must be > 0, got rtol={config.rtol}, atol={config.atol}")


def integrate_step(
    derivative: StateDerivative, state: torch.Tensor, dt: float, config: IntegratorConfig,
    project: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Advance ``state`` by ``dt`` under the autonomous ODE ``d state/dt = derivative(state)``.

    Args:
        derivative: the right-hand side, batched over the leading dimensions of ``state``.
        state: ``[B, n]`` state at the start of the step.
        dt: step length in seconds.
        config: method and its settings. ``rk4`` takes ``substeps`` equal steps (torchdiffeq's
            fixed-grid ``rk4``); ``dopri5`` adapts its step to ``rtol``/``atol``, with one
            step size shared by the whole batch.
        project: maps a state onto its manifold (unit quaternions) before the step and
            after each rk4 substep, or after the dopri5 step; ``None`` for a flat state.

    Returns:
        ``[B, n]`` state at the end of the step.
    """
    from torchdiffeq import odeint  # imports scipy (0.7 s): loaded when first integrated, not with the package

    times = torch.tensor([0.0, dt], dtype=state.dtype, device=state.device)

    def rhs(_t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return derivative(y)

    if project is not None:
        state = project(state)  # MuJoCo reads a quaternion q as q / |q|: so does the model
    if config.method == "rk4" and project is not None:
        # One torchdiffeq step per substep, each projected: as FixedStepRK4 does.
        substep_times = torch.tensor([0.0, dt / config.substeps], dtype=state.dtype, device=state.device)
        for _ in range(config.substeps):
            state = project(odeint(rhs, state, substep_times, method="rk4")[-1])
        return state
    if config.method == "rk4":
        substeps = config.substeps

        # An explicit grid: torchdiffeq's step_size option can add a zero-length step
        # when dt / step_size rounds up.
        def grid(_f: object, _y0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return torch.linspace(float(t[0]), float(t[-1]), substeps + 1, dtype=t.dtype, device=t.device)

        solution = odeint(rhs, state, times, method="rk4", options={"grid_constructor": grid})
    elif config.method == "dopri5":
        solution = odeint(rhs, state, times, method="dopri5", rtol=config.rtol, atol=config.atol)
    else:
        check_integrator(config)
        raise InputError(f"integrate_step runs rk4 and dopri5; {config.method!r} steps through its module "
                         "(SemiImplicitEuler for euler)")
    return solution[-1] if project is None else project(solution[-1])


class FixedStepRK4(torch.nn.Module):
    """torchdiffeq's ``rk4`` (the 3/8 rule) over equal substeps, written out so it traces
    into one graph: torchdiffeq's per-call solver set-up costs more than a small model.
    The fast path environments step through (:meth:`Simulator.fast_predict`); equal to
    :func:`integrate_step`'s ``rk4`` to float32 rounding (tested).

    :param field: the vector field (``encode_action`` and ``field(y, context)``).
    :param dt: the control step in seconds.
    :param substeps: equal rk4 steps per control step.
    :param projection: a module mapping states back onto their manifold after each substep
        (a layout's :class:`~neural_sim.model.rotations.RotationKinematics`), or ``None``.
    """

    def __init__(self, field: VectorField, dt: float, substeps: int,
                 projection: RotationKinematics | None = None) -> None:
        super().__init__()
        self.field, self.h, self.substeps = field, dt / substeps, substeps
        self.projection = projection

    def forward(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``[B, nq + nv]`` states one control step after ``states`` under ``actions``."""
        context = self.field.encode_action(actions)
        y, h = states, self.h
        if self.projection is not None:
            y = self.projection.project(y)  # MuJoCo reads a quaternion q as q / |q|: so does the model
        for _ in range(self.substeps):
            # The same arithmetic as written out in torchdiffeq, in fused ``add(x, y, alpha)``
            # form: about half the operations.
            k1 = self.field(y, context)
            k2 = self.field(torch.add(y, k1, alpha=h / 3), context)
            k3 = self.field(torch.add(y, torch.add(k2, k1, alpha=-1 / 3), alpha=h), context)
            k4 = self.field(torch.add(y, k1 - k2 + k3, alpha=h), context)
            y = torch.add(y, torch.add(torch.add(k1, k2 + k3, alpha=3), k4), alpha=h / 8)
            if self.projection is not None:
                y = self.projection.project(y)
        return y


class SemiImplicitEuler(torch.nn.Module):
    """The ``euler`` method: per substep ``h``, ``v' = v + h a(q, v, u)``, ``q' = q + h v'``.

    A discrete-time head over the same field: one evaluation a substep, and the update
    MuJoCo's default (semi-implicit Euler) integrator takes each physics step, so with
    ``substeps`` equal to the physics steps per control step the model has MuJoCo's shape
    and learns only its accelerations. The field's ``velocity_lag`` (a continuous-time
    stand-in for this very update) is not used.

    :param field: the vector field (``encode_action`` and ``field(y, context)``, whose
        last ``nv`` outputs are the acceleration).
    :param dt: the control step in seconds.
    :param substeps: Euler steps per control step.
    :param rotations: the layout's :class:`~neural_sim.model.rotations.RotationKinematics`
        (quaternion rates, projection back onto the unit sphere).
    :param nq: position coordinates in a state (the first ``nq`` entries).
    """

    def __init__(self, field: VectorField, dt: float, substeps: int, rotations: RotationKinematics,
                 nq: int) -> None:
        super().__init__()
        self.field, self.h, self.substeps = field, dt / substeps, substeps
        self.rotations, self.nq = rotations, nq

    def forward(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``[B, nq + nv]`` states one control step after ``states`` under ``actions``."""
        context = self.field.encode_action(actions)
        y, h, nq = states, self.h, self.nq
        active = self.rotations.active
        if active:
            y = self.rotations.project(y)  # MuJoCo reads a quaternion q as q / |q|: so does the model
        for _ in range(self.substeps):
            q, v = y[..., :nq], y[..., nq:]
            velocity = torch.add(v, self.field(y, context)[..., nq:], alpha=h)
            y = torch.cat([torch.add(q, self.rotations.position_rate(q, velocity), alpha=h), velocity], dim=-1)
            if active:
                y = self.rotations.project(y)
        return y
