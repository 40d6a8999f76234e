"""Integrate a vector field over one control step with torchdiffeq.

One entry point, :func:`integrate_step`; methods are chosen by name from
:data:`METHODS`, like torchdiffeq's own ``SOLVERS`` table.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchdiffeq import odeint

from neural_sim.errors import InputError, UnknownNameError
from neural_sim.model.config import IntegratorConfig

#: Methods accepted in :class:`~neural_sim.model.config.IntegratorConfig`.
METHODS = ("rk4", "dopri5")

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
    derivative: StateDerivative, state: torch.Tensor, dt: float, config: IntegratorConfig
) -> torch.Tensor:
    """Advance ``state`` by ``dt`` under the autonomous ODE ``d state/dt = derivative(state)``.

    Args:
        derivative: the right-hand side, batched over the leading dimensions of ``state``.
        state: ``[B, n]`` state at the start of the step.
        dt: step length in seconds.
        config: method and its settings. ``rk4`` takes ``substeps`` equal steps (torchdiffeq's
            fixed-grid ``rk4``); ``dopri5`` adapts its step to ``rtol``/``atol``, with one
            step size shared by the whole batch.

    Returns:
        ``[B, n]`` state at the end of the step.
    """
    times = torch.tensor([0.0, dt], dtype=state.dtype, device=state.device)

    def rhs(_t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return derivative(y)

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
        raise AssertionError("unreachable")
    return solution[-1]
