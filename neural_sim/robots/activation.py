"""Actuator activations (MuJoCo ``data.act``): state that ``(qpos, qvel)`` does not carry.

Some actuators filter their control: dm_control's quadruped drives position servos whose
target follows the control with a 0.1 s lag, and its observation reads that target. The
activation after a control step is a known function of the activation before it and the
control, so bridges and models advance it exactly by MuJoCo's rule
(:mod:`neural_sim.model.activations`), read here from the ``MjModel``.
"""

from __future__ import annotations

import mujoco
import numpy as np

from neural_sim.errors import InputError
from neural_sim.model.activations import advance_numpy
from neural_sim.model.config import ActivationLayout

_EULER_INTEGRATORS = (mujoco.mjtIntegrator.mjINT_EULER, mujoco.mjtIntegrator.mjINT_IMPLICIT,
                      mujoco.mjtIntegrator.mjINT_IMPLICITFAST)
_KINDS = {int(mujoco.mjtDyn.mjDYN_INTEGRATOR): "integrator", int(mujoco.mjtDyn.mjDYN_FILTER): "filter",
          int(mujoco.mjtDyn.mjDYN_FILTEREXACT): "filterexact"}


def activation_layout(model: mujoco.MjModel, substeps: int) -> ActivationLayout | None:
    """The rule of the model's actuator activations (``None`` when it has none).

    :param substeps: physics steps per control step.
    :raises NotImplementedError: activation dynamics other than integrator and filters
        (muscles, user dynamics), several activations per actuator, an integrator other
        than Euler and implicit ones, or an integrator activation without a range (its
        network inputs could not be scaled).
    """
    if model.na == 0:
        return None
    if model.opt.integrator not in _EULER_INTEGRATORS:
        raise NotImplementedError("actuator activations are advanced for Euler and implicit integrators only")
    actuators = np.flatnonzero(model.actuator_actadr >= 0)
    kinds = [int(model.actuator_dyntype[a]) for a in actuators]
    unsupported = sorted({mujoco.mjtDyn(k).name.removeprefix("mjDYN_").lower() for k in kinds if k not in _KINDS})
    if unsupported or any(model.actuator_actnum[a] != 1 for a in actuators):
        raise NotImplementedError(
            f"actuator activation dynamics {unsupported or 'with several activations'} are not supported; "
            f"supported: {sorted(_KINDS.values())}")
    if not np.array_equal(model.actuator_actadr[actuators], np.arange(model.na)):
        raise NotImplementedError("activations are not stored in actuator order")
    control_limited = np.asarray(model.actuator_ctrllimited[actuators], dtype=bool)
    control = np.where(control_limited[:, None], model.actuator_ctrlrange[actuators], 0.0)
    clamped = np.asarray(model.actuator_actlimited[actuators], dtype=bool)
    # A filter's activation stays within its control's range; an integrator's needs its own.
    filters = np.array([_KINDS[k] != "integrator" for k in kinds])
    ranges = np.where(clamped[:, None], model.actuator_actrange[actuators], control)
    if not np.all((filters & control_limited) | clamped):
        raise NotImplementedError("an activation has no range (unlimited control or integrator)")
    return ActivationLayout(
        actuators=tuple(int(a) for a in actuators),
        kinds=tuple(_KINDS[k] for k in kinds),  # type: ignore[misc]
        time_constants=tuple(float(model.actuator_dynprm[a, 0]) for a in actuators),
        control_limited=tuple(bool(x) for x in control_limited),
        control_low=tuple(float(x) for x in control[:, 0]),
        control_high=tuple(float(x) for x in control[:, 1]),
        low=tuple(float(x) for x in ranges[:, 0]),
        high=tuple(float(x) for x in ranges[:, 1]),
        clamped=tuple(bool(x) for x in clamped),
        physics_steps=int(substeps),
        physics_timestep=float(model.opt.timestep),
    )


class ActuatorActivation:
    """Advances ``data.act`` over one control step, as MuJoCo's own steps would.

    :param spec: the rule (:func:`activation_layout`).
    """

    def __init__(self, spec: ActivationLayout) -> None:
        self.spec = spec
        self.size = spec.size

    def advance(self, act: np.ndarray, control: np.ndarray) -> np.ndarray:
        """The activations ``[..., na]`` after one control step from ``act`` under ``control``
        ``[..., nu]`` (one env, or a batch)."""
        return advance_numpy(self.spec, act, control)


def supported_activation(model: mujoco.MjModel, substeps: int, robot: str) -> ActuatorActivation | None:
    """The model's activation update (``None`` without activations), refusing a robot whose
    activations it cannot advance.

    :raises InputError: naming the robot and the reason (:func:`activation_layout`).
    """
    try:
        spec = activation_layout(model, substeps)
    except NotImplementedError as error:
        raise InputError(f"robot {robot!r}: {error}; neural-sim cannot carry its actuator state") from error
    return ActuatorActivation(spec) if spec is not None else None
