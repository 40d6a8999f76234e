"""MuJoCo's rule for actuator activations over one control step (``mj_advance``).

The control is clamped to its range (where MuJoCo clamps it), ``act_dot`` is ``ctrl`` for
an integrator and ``(ctrl - act) / tau`` for a filter, each physics step adds ``h * act_dot``
(``filterexact``: the exact exponential step ``act_dot * tau * (1 - exp(-h / tau))``), and
the activation is clamped to its range where MuJoCo clamps it. Exact: the same arithmetic,
in float64.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from neural_sim.model.config import ActivationLayout, StateLayout


def advance(spec: ActivationLayout, activations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """The activations ``[..., na]`` after one control step under ``actions`` ``[..., nu]``.

    :param spec: the actuators' activation rule (a layout's :attr:`StateLayout.activations`).
    :param activations: the activations at the start of the step.
    :param actions: the step's actions.
    """
    dtype, device = torch.float64, activations.device
    constants = _constants(spec, device)
    act = activations.to(dtype)
    ctrl = actions.to(dtype)[..., constants["actuators"]]
    ctrl = torch.where(constants["control_limited"],
                       torch.minimum(torch.maximum(ctrl, constants["control_low"]), constants["control_high"]), ctrl)
    h, tau = spec.physics_timestep, constants["tau"]
    for _ in range(spec.physics_steps):
        rate = torch.where(constants["integrating"], ctrl, (ctrl - act) / tau)
        change = torch.where(constants["exact"], rate * tau * (1 - torch.exp(-h / tau)), h * rate)
        act = act + change
        act = torch.where(constants["clamped"], torch.minimum(torch.maximum(act, constants["low"]), constants["high"]),
                          act)
    return act.to(activations.dtype)


def advance_numpy(spec: ActivationLayout, activations: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """:func:`advance` on NumPy arrays (float64 out)."""
    return advance(spec, torch.as_tensor(np.asarray(activations, dtype=np.float64)),
                   torch.as_tensor(np.asarray(actions, dtype=np.float64))).numpy()


def zero_activations(layout: StateLayout, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Activations at an episode start (MuJoCo's reset zeroes them), ``[batch, na]``."""
    return torch.zeros(batch, layout.na, dtype=torch.float32, device=device)


@functools.lru_cache(maxsize=32)
def _constants(spec: ActivationLayout, device: torch.device) -> dict[str, torch.Tensor]:
    """The rule's per-activation constants as float64 tensors, built once per rule and device:
    environments advance activations every step. Callers must not modify them."""
    def tensor(values: object, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        return torch.as_tensor(values, dtype=dtype, device=device)

    return {
        "actuators": tensor(spec.actuators, torch.long),
        "control_limited": tensor(spec.control_limited, torch.bool),
        "control_low": tensor(spec.control_low),
        "control_high": tensor(spec.control_high),
        "integrating": tensor([k == "integrator" for k in spec.kinds], torch.bool),
        "exact": tensor([k == "filterexact" for k in spec.kinds], torch.bool),
        # MuJoCo floors a filter's time constant at mjMINVAL (1e-15).
        "tau": torch.clamp(tensor(spec.time_constants), min=1e-15),
        "clamped": tensor(spec.clamped, torch.bool),
        "low": tensor(spec.low),
        "high": tensor(spec.high),
    }
