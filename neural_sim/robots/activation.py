"""Actuator activations (MuJoCo ``data.act``): state that ``(qpos, qvel)`` does not carry.

Some actuators filter their control: dm_control's quadruped drives position servos whose
target follows the control with a 0.1 s lag, and its observation reads that target. The
activation after a control step is a known function of the activation before it and the
control, so a bridge advances it exactly, as MuJoCo's own integrator would, instead of the
learned model predicting it.
"""

from __future__ import annotations

import mujoco
import numpy as np

from neural_sim.errors import InputError

_EULER_INTEGRATORS = (mujoco.mjtIntegrator.mjINT_EULER, mujoco.mjtIntegrator.mjINT_IMPLICIT,
                      mujoco.mjtIntegrator.mjINT_IMPLICITFAST)
_SUPPORTED = {int(mujoco.mjtDyn.mjDYN_INTEGRATOR): "integrator", int(mujoco.mjtDyn.mjDYN_FILTER): "filter",
              int(mujoco.mjtDyn.mjDYN_FILTEREXACT): "filterexact"}
_MIN_TIME_CONSTANT = float(mujoco.mjMINVAL)


class ActuatorActivation:
    """Advances ``data.act`` over one control step of ``substeps`` physics steps.

    MuJoCo's rule (``mj_advance``): the control is clamped to its range, ``act_dot`` is
    ``ctrl`` (integrator) or ``(ctrl - act) / tau`` (filters), each physics step adds
    ``h * act_dot`` (``filterexact``: the exact exponential step), then the activation is
    clamped to its range.

    :param model: the robot's ``MjModel``.
    :param substeps: physics steps per control step.
    :raises NotImplementedError: an activation kind other than integrator and filters
        (muscles, user dynamics), or an integrator other than Euler and implicit ones.
    """

    def __init__(self, model: mujoco.MjModel, substeps: int) -> None:
        self.size = int(model.na)
        self._substeps = int(substeps)
        self._step = float(model.opt.timestep)
        if model.opt.integrator not in _EULER_INTEGRATORS:
            raise NotImplementedError("actuator activations are advanced for Euler and implicit integrators only")
        actuators = np.flatnonzero(model.actuator_actadr >= 0)
        kinds = [int(model.actuator_dyntype[a]) for a in actuators]
        unsupported = sorted({k for k in kinds if k not in _SUPPORTED})
        if unsupported or any(model.actuator_actnum[a] != 1 for a in actuators):
            raise NotImplementedError(
                f"actuator activation dynamics {unsupported or 'with several activations'} are not supported; "
                f"supported: {sorted(_SUPPORTED.values())}")
        self._actuators = actuators
        self._addresses = np.asarray(model.actuator_actadr[actuators], dtype=np.int64)
        self._integrating = np.array([k == mujoco.mjtDyn.mjDYN_INTEGRATOR for k in kinds], dtype=bool)
        self._exact = np.array([k == mujoco.mjtDyn.mjDYN_FILTEREXACT for k in kinds], dtype=bool)
        self._tau = np.maximum(np.asarray(model.actuator_dynprm[actuators, 0], dtype=np.float64), _MIN_TIME_CONSTANT)
        limited = np.asarray(model.actuator_ctrllimited[actuators], dtype=bool)
        ranges = np.asarray(model.actuator_ctrlrange[actuators], dtype=np.float64)
        self._ctrl_low = np.where(limited, ranges[:, 0], -np.inf)
        self._ctrl_high = np.where(limited, ranges[:, 1], np.inf)
        act_limited = np.asarray(model.actuator_actlimited[actuators], dtype=bool)
        act_ranges = np.asarray(model.actuator_actrange[actuators], dtype=np.float64)
        self._act_low = np.where(act_limited, act_ranges[:, 0], -np.inf)
        self._act_high = np.where(act_limited, act_ranges[:, 1], np.inf)

    @staticmethod
    def of(model: mujoco.MjModel, substeps: int) -> ActuatorActivation | None:
        """The model's activation update, or ``None`` when it has no activations."""
        return ActuatorActivation(model, substeps) if model.na > 0 else None

    def advance(self, act: np.ndarray, control: np.ndarray) -> np.ndarray:
        """The activations ``[..., na]`` after one control step from ``act`` under ``control``
        ``[..., nu]`` (one env, or a batch)."""
        act = np.array(act, dtype=np.float64)
        ctrl = np.clip(np.asarray(control, dtype=np.float64)[..., self._actuators], self._ctrl_low, self._ctrl_high)
        current = act[..., self._addresses]
        h, tau = self._step, self._tau
        for _ in range(self._substeps):
            rate = np.where(self._integrating, ctrl, (ctrl - current) / tau)
            change = np.where(self._exact, rate * tau * (1 - np.exp(-h / tau)), h * rate)
            current = np.clip(current + change, self._act_low, self._act_high)
        act[..., self._addresses] = current
        return act

def supported_activation(model: mujoco.MjModel, substeps: int, robot: str) -> ActuatorActivation | None:
    """:meth:`ActuatorActivation.of`, refusing a robot whose activations it cannot advance.

    :raises InputError: activation dynamics other than integrator and filters, or an
        integrator other than Euler and implicit ones.
    """
    try:
        return ActuatorActivation.of(model, substeps)
    except NotImplementedError as error:
        raise InputError(f"robot {robot!r}: {error}; neural-sim cannot carry its actuator state") from error
