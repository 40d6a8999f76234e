"""What a robot's MuJoCo model says about its state layout (shared by every robot source)."""

from __future__ import annotations

import math

import mujoco
import numpy as np
from gymnasium import spaces

from neural_sim.model.config import ContactKinematics, ContactTree, RotationJoint, StateLayout, TreeBody, TreeJoint
from neural_sim.robots.activation import activation_layout


def state_layout(model: mujoco.MjModel, dt: float, action_space: spaces.Box,
                 invariant_joints: tuple[str, ...] = ()) -> StateLayout:
    """The :class:`StateLayout` of a robot's MuJoCo model (every robot source builds it here).

    :param dt: the control timestep.
    :param action_space: the source env's action bounds.
    :param invariant_joints: names of translation-invariant joints: a slide (``rootx``), or
        a free joint whose x and y do not change the dynamics (a robot on flat ground).
    :raises NotImplementedError: actuator activations neural-sim cannot advance
        (:func:`~neural_sim.robots.activation.activation_layout`).
    """
    planar = contact_kinematics(model)
    return StateLayout(
        nq=int(model.nq),
        nv=int(model.nv),
        nu=int(model.nu),
        dt=float(dt),
        action_low=tuple(float(x) for x in action_space.low),
        action_high=tuple(float(x) for x in action_space.high),
        angle_qpos=angle_qpos(model),
        invariant_qpos=invariant_qpos(model, invariant_joints),
        velocity_lag=velocity_lag(model),
        contact_kinematics=planar,
        contact_tree=contact_tree(model) if planar is None else None,
        rotation_joints=rotation_joints(model),
        activations=activation_layout(model, round(dt / float(model.opt.timestep))),
    )


def joint_name(model: mujoco.MjModel, joint: int) -> str:
    """A joint's name, ``"joint<id>"`` for an unnamed one (MJCF's ``<freejoint/>``)."""
    return mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, joint) or f"joint{joint}"


def free_joint_names(model: mujoco.MjModel) -> tuple[str, ...]:
    """Names of the free joints (:func:`joint_name`)."""
    return tuple(joint_name(model, j) for j in range(model.njnt) if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE)


def rotation_joints(model: mujoco.MjModel) -> tuple[RotationJoint, ...]:
    """The free and ball joints, whose orientation is a unit quaternion."""
    kinds = {int(mujoco.mjtJoint.mjJNT_FREE): "free", int(mujoco.mjtJoint.mjJNT_BALL): "ball"}
    return tuple(
        RotationJoint(
            name=joint_name(model, joint),
            kind=kinds[int(model.jnt_type[joint])],  # type: ignore[arg-type]
            qpos=int(model.jnt_qposadr[joint]),
            dof=int(model.jnt_dofadr[joint]),
        )
        for joint in range(model.njnt)
        if int(model.jnt_type[joint]) in kinds
    )


def angle_qpos(model: mujoco.MjModel) -> tuple[int, ...]:
    """Qpos indices of unlimited hinges: angles the networks see as (sin, cos)."""
    return tuple(
        int(model.jnt_qposadr[joint])
        for joint in range(model.njnt)
        if model.jnt_type[joint] == mujoco.mjtJoint.mjJNT_HINGE and not model.jnt_limited[joint]
    )


def invariant_qpos(model: mujoco.MjModel, joint_names: tuple[str, ...]) -> tuple[int, ...]:
    """Qpos indices of the named joints (translation-invariant coordinates: a slide's
    ``rootx``, a free joint's x and y)."""
    indices: list[int] = []
    for joint in range(model.njnt):
        if joint_name(model, joint) in joint_names:
            adr = int(model.jnt_qposadr[joint])
            free = model.jnt_type[joint] == mujoco.mjtJoint.mjJNT_FREE
            indices += [adr, adr + 1] if free else [adr]
    return tuple(indices)


def velocity_lag(model: mujoco.MjModel) -> float:
    """Half the physics timestep for Euler integrators, else 0.

    Semi-implicit (and implicit) Euler update positions with the *new* velocity, which
    ``dq/dt = v`` cannot represent; ``dq/dt = v + lag * dv/dt`` is exact to first order.
    """
    euler = model.opt.integrator != mujoco.mjtIntegrator.mjINT_RK4
    return float(model.opt.timestep) / 2 if euler else 0.0



# -- contact kinematics of planar robots ------------------------------------------------
# An angle is a linear form of qpos: (coefficients over qpos indices, constant).
_Angle = tuple[tuple[float, ...], float]


def _rotation_about_y(quat: np.ndarray) -> float | None:
    """The angle of a unit quaternion that turns about +y only, else ``None``."""
    w, x, y, z = (float(c) for c in quat)
    if abs(x) > 1e-9 or abs(z) > 1e-9:
        return None
    return 2.0 * math.atan2(y, w)


def _contact_points(model: mujoco.MjModel) -> list[tuple[str, int, np.ndarray, float]]:
    """``(name, body, point in the body's frame, radius)`` of every point of a geom that can
    touch a floor plane: capsule and cylinder ends, sphere and ellipsoid centres, box corners."""
    planes = [g for g in range(model.ngeom)
              if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_PLANE and model.geom_bodyid[g] == 0]
    points: list[tuple[str, int, np.ndarray, float]] = []
    for g in range(model.ngeom):
        body = int(model.geom_bodyid[g])
        touches = any((model.geom_contype[g] & model.geom_conaffinity[p]) or
                      (model.geom_contype[p] & model.geom_conaffinity[g]) for p in planes)
        if body == 0 or not touches:
            continue
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, g) or f"geom{g}"
        kind, size = mujoco.mjtGeom(int(model.geom_type[g])), model.geom_size[g]
        if kind in (mujoco.mjtGeom.mjGEOM_CAPSULE, mujoco.mjtGeom.mjGEOM_CYLINDER):
            local = {"a": np.array([0.0, 0.0, size[1]]), "b": np.array([0.0, 0.0, -size[1]])}
            radius = float(size[0])
        elif kind == mujoco.mjtGeom.mjGEOM_BOX:
            local = {f"{i}": np.array([sx, sy, sz]) * size for i, (sx, sy, sz) in
                     enumerate((a, b, c) for a in (-1, 1) for b in (-1, 1) for c in (-1, 1))}
            radius = 0.0
        elif kind in (mujoco.mjtGeom.mjGEOM_SPHERE, mujoco.mjtGeom.mjGEOM_ELLIPSOID):
            local, radius = {"c": np.zeros(3)}, float(size.max() if kind == mujoco.mjtGeom.mjGEOM_ELLIPSOID
                                                       else size[0])
        else:
            continue  # meshes and other shapes: no closed-form contact points
        for end, offset in local.items():
            rotated = np.zeros(3)
            mujoco.mju_rotVecQuat(rotated, offset, model.geom_quat[g])
            points.append((f"{name}:{end}", body, model.geom_pos[g] + rotated, radius))
    floor = float(model.geom_pos[planes[0]][2]) if planes else 0.0
    return [(name, body, point, radius + floor) for name, body, point, radius in points]


def contact_kinematics(model: mujoco.MjModel) -> ContactKinematics | None:
    """Closed-form heights of the points that can touch the floor, for a planar robot
    (every hinge turns about the y axis, slides come before any hinge in their chain, body
    frames turn about y only); ``None`` for any other robot or one with no such points."""
    nq = int(model.nq)
    if model.nq != model.nv:
        return None
    zero: _Angle = ((0.0,) * nq, 0.0)
    # Per body: its frame's angle, and its origin's height as terms (angle, x, z) in rotated
    # frames plus slide terms (qpos coefficients) and a constant.
    angles: dict[int, _Angle] = {0: zero}
    rotated: dict[int, list[tuple[_Angle, float, float]]] = {0: []}
    slides: dict[int, np.ndarray] = {0: np.zeros(nq)}
    constant: dict[int, float] = {0: 0.0}
    for b in range(1, model.nbody):
        parent = int(model.body_parentid[b])
        beta = _rotation_about_y(model.body_quat[b])
        if beta is None:
            return None
        angle = angles[parent]
        terms = [*rotated[parent], (angle, float(model.body_pos[b][0]), float(model.body_pos[b][2]))]
        slide, const = slides[parent].copy(), constant[parent]
        angle = (angle[0], angle[1] + beta)
        for j in range(model.body_jntadr[b], model.body_jntadr[b] + model.body_jntnum[b]):
            adr, axis, anchor = int(model.jnt_qposadr[j]), model.jnt_axis[j], model.jnt_pos[j]
            ref = float(model.qpos0[adr])
            if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE:
                if abs(axis[0]) > 1e-9 or abs(axis[2]) > 1e-9:
                    return None
                sign = 1.0 if axis[1] > 0 else -1.0
                coefficients = list(angle[0])
                coefficients[adr] += sign
                turned: _Angle = (tuple(coefficients), angle[1] - sign * ref)
                # The hinge turns the frame about its anchor: origin += R(a) p - R(a') p.
                terms += [(angle, float(anchor[0]), float(anchor[2])),
                          (turned, -float(anchor[0]), -float(anchor[2]))]
                angle = turned
            elif model.jnt_type[j] == mujoco.mjtJoint.mjJNT_SLIDE:
                if any(angle[0]):
                    return None  # a slide carried by a hinge moves along a turning axis
                rise = -axis[0] * math.sin(angle[1]) + axis[2] * math.cos(angle[1])
                slide[adr] += rise
                const -= rise * ref
            else:
                return None
        angles[b], rotated[b], slides[b], constant[b] = angle, terms, slide, const
    points = _contact_points(model)
    if not points:
        return None
    frames: list[_Angle] = []
    for b in range(model.nbody):
        for angle, _, _ in rotated[b]:
            if angle not in frames:
                frames.append(angle)
        if angles[b] not in frames:
            frames.append(angles[b])
    sin_weights = np.zeros((len(frames), len(points)))
    cos_weights = np.zeros((len(frames), len(points)))
    slide_weights = np.zeros((nq, len(points)))
    offsets = np.zeros(len(points))
    for p, (_, body, point, lowered) in enumerate(points):
        # World z of R(a) (x, ., z) = -x sin(a) + z cos(a), for a turn by a about +y.
        for angle, x, z in [*rotated[body], (angles[body], float(point[0]), float(point[2]))]:
            t = frames.index(angle)
            sin_weights[t, p] -= x
            cos_weights[t, p] += z
        slide_weights[:, p] = slides[body]
        offsets[p] = constant[body] - lowered
    return ContactKinematics(
        points=tuple(name for name, _, _, _ in points),
        angle_weights=tuple(tuple(float(frames[t][0][i]) for t in range(len(frames))) for i in range(nq)),
        angle_offsets=tuple(float(a[1]) for a in frames),
        sin_weights=tuple(tuple(float(w) for w in row) for row in sin_weights),
        cos_weights=tuple(tuple(float(w) for w in row) for row in cos_weights),
        slide_weights=tuple(tuple(float(w) for w in row) for row in slide_weights),
        offsets=tuple(float(c) for c in offsets),
    )


_TREE_JOINTS = {int(mujoco.mjtJoint.mjJNT_FREE): "free", int(mujoco.mjtJoint.mjJNT_HINGE): "hinge",
                int(mujoco.mjtJoint.mjJNT_SLIDE): "slide"}


def contact_tree(model: mujoco.MjModel) -> ContactTree | None:
    """The body tree and floor points of a robot, for contact features by forward kinematics
    (:class:`~neural_sim.model.kinematics.ContactTreeHeights`); ``None`` for a robot with a
    ball joint, a free joint below the world, or no point that can touch a floor plane."""
    points = _contact_points(model)
    if not points:
        return None
    bodies: list[TreeBody] = []
    for b in range(1, model.nbody):
        joints: list[TreeJoint] = []
        for j in range(model.body_jntadr[b], model.body_jntadr[b] + model.body_jntnum[b]):
            kind = _TREE_JOINTS.get(int(model.jnt_type[j]))
            if kind is None or (kind == "free" and (model.body_parentid[b] != 0 or model.body_jntnum[b] != 1)):
                return None
            adr = int(model.jnt_qposadr[j])
            joints.append(TreeJoint(
                kind=kind,  # type: ignore[arg-type]
                qpos=adr,
                dof=int(model.jnt_dofadr[j]),
                axis=tuple(float(x) for x in model.jnt_axis[j]),
                anchor=tuple(float(x) for x in model.jnt_pos[j]),
                reference=float(model.qpos0[adr]) if kind != "free" else 0.0,
            ))
        bodies.append(TreeBody(
            parent=int(model.body_parentid[b]) - 1,
            position=tuple(float(x) for x in model.body_pos[b]),
            quaternion=tuple(float(x) for x in model.body_quat[b]),
            joints=tuple(joints),
        ))
    return ContactTree(
        bodies=tuple(bodies),
        points=tuple(name for name, _, _, _ in points),
        point_bodies=tuple(body - 1 for _, body, _, _ in points),
        point_positions=tuple(tuple(float(x) for x in point) for _, _, point, _ in points),
        point_offsets=tuple(float(lowered) for _, _, _, lowered in points),
    )
