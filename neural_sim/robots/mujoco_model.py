"""What a robot's MuJoCo model says about its state layout (shared by every robot source)."""

from __future__ import annotations

import mujoco


def angle_qpos(model: mujoco.MjModel) -> tuple[int, ...]:
    """qpos indices of unlimited hinges: angles the networks see as (sin, cos)."""
    return tuple(
        int(model.jnt_qposadr[joint])
        for joint in range(model.njnt)
        if model.jnt_type[joint] == mujoco.mjtJoint.mjJNT_HINGE and not model.jnt_limited[joint]
    )


def invariant_qpos(model: mujoco.MjModel, joint_names: tuple[str, ...]) -> tuple[int, ...]:
    """qpos indices of the named joints (translation-invariant coordinates, e.g. ``rootx``)."""
    return tuple(
        int(model.jnt_qposadr[joint])
        for joint in range(model.njnt)
        if mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, joint) in joint_names
    )


def velocity_lag(model: mujoco.MjModel) -> float:
    """Half the physics timestep for Euler integrators, else 0.

    Semi-implicit (and implicit) Euler update positions with the *new* velocity, which
    ``dq/dt = v`` cannot represent; ``dq/dt = v + lag * dv/dt`` is exact to first order.
    """
    euler = model.opt.integrator != mujoco.mjtIntegrator.mjINT_RK4
    return float(model.opt.timestep) / 2 if euler else 0.0

