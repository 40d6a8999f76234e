"""JSON-serialisable configuration of a neural simulator.

Every size, dimension and normalisation constant a model needs lives here, so that a
checkpoint's ``config.json`` alone rebuilds the network before its weights are loaded.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

Architecture = Literal["mosim", "residual"]
Activation = Literal["softplus", "swish"]
IntegratorMethod = Literal["rk4", "dopri5", "euler"]
RotationJointKind = Literal["free", "ball"]


@dataclass(frozen=True)
class NetworkConfig:
    """Size of one network.

    :param blocks: residual blocks of a ResNet, or hidden layers of an MLP.
    :param width: hidden width.
    """

    blocks: int
    width: int


@dataclass(frozen=True)
class ContactKinematics:
    """Heights above the floor of the points of a planar robot that can touch it, as
    functions of ``qpos`` (forward kinematics in closed form, read from the MuJoCo model).

    Every hinge of a planar robot turns about the same axis, so each point's height is
    ``h = q S + sin(q A + a0) Cs + cos(q A + a0) Cc + c``: ``A`` ``[nq, T]`` and ``a0``
    ``[T]`` give the angles of the ``T`` frames the robot's offsets are expressed in, and
    its rate is ``dh/dt = v S + (cos(.) * v A) Cs - (sin(.) * v A) Cc``.

    :param points: names of the ``P`` points (``"<geom>:<end>"``).
    :param angle_weights: ``A``, ``nq`` rows of ``T``.
    :param angle_offsets: ``a0``, ``T`` values.
    :param sin_weights: ``Cs``, ``T`` rows of ``P``.
    :param cos_weights: ``Cc``, ``T`` rows of ``P``.
    :param slide_weights: ``S``, ``nq`` rows of ``P``.
    :param offsets: ``c``, ``P`` values (each point's radius and the floor's height included).
    """

    points: tuple[str, ...]
    angle_weights: tuple[tuple[float, ...], ...]
    angle_offsets: tuple[float, ...]
    sin_weights: tuple[tuple[float, ...], ...]
    cos_weights: tuple[tuple[float, ...], ...]
    slide_weights: tuple[tuple[float, ...], ...]
    offsets: tuple[float, ...]


TreeJointKind = Literal["free", "hinge", "slide"]


@dataclass(frozen=True)
class TreeJoint:
    """A joint of :class:`ContactTree`, in its body's frame (MuJoCo's ``jnt_*`` fields).

    :param kind: ``"free"``, ``"hinge"`` or ``"slide"``.
    :param qpos: index of its first ``qpos`` entry.
    :param dof: index of its first ``qvel`` entry.
    :param axis: unit axis of a hinge or slide in the body's frame (unused for a free joint).
    :param anchor: the point a hinge turns about, in the body's frame.
    :param reference: the ``qpos`` at which a hinge or slide leaves its body where the model
        file puts it (MuJoCo's ``qpos0``).
    """

    kind: TreeJointKind
    qpos: int
    dof: int
    axis: tuple[float, ...] = (0.0, 0.0, 1.0)
    anchor: tuple[float, ...] = (0.0, 0.0, 0.0)
    reference: float = 0.0


@dataclass(frozen=True)
class TreeBody:
    """A body of :class:`ContactTree`: where it sits in its parent's frame, and its joints.

    :param parent: index of the parent body in ``ContactTree.bodies`` (-1: the world).
    :param position: its frame's origin in the parent's frame.
    :param quaternion: its frame's orientation in the parent's frame (w, x, y, z).
    :param joints: its joints, applied in order (a free joint replaces the offset).
    """

    parent: int
    position: tuple[float, ...]
    quaternion: tuple[float, ...]
    joints: tuple[TreeJoint, ...] = ()


@dataclass(frozen=True)
class ContactTree:
    """Heights above the floor of the points of any robot that can touch it: forward
    kinematics over the robot's body tree (free, hinge and slide joints), for robots that
    are not planar (those use the closed form of :class:`ContactKinematics`).

    :param bodies: the bodies, each after its parent.
    :param points: names of the ``P`` points (``"<geom>:<end>"``).
    :param point_bodies: the body each point belongs to.
    :param point_positions: each point in its body's frame.
    :param point_offsets: subtracted from each point's height: its radius plus the floor's height.
    """

    bodies: tuple[TreeBody, ...]
    points: tuple[str, ...]
    point_bodies: tuple[int, ...]
    point_positions: tuple[tuple[float, ...], ...]
    point_offsets: tuple[float, ...]


@dataclass(frozen=True)
class RotationJoint:
    """A joint whose orientation is a unit quaternion: MuJoCo's free and ball joints.

    A free joint holds 7 ``qpos`` (position x, y, z, then the quaternion w, x, y, z) and 6
    ``qvel`` (linear velocity in the world frame, then angular velocity in the body frame);
    a ball joint holds 4 ``qpos`` (the quaternion) and 3 ``qvel`` (angular velocity in the
    body frame).

    :param name: the joint's name in the MuJoCo model.
    :param kind: ``"free"`` or ``"ball"``.
    :param qpos: index of its first ``qpos`` entry.
    :param dof: index of its first ``qvel`` entry.
    """

    name: str
    kind: RotationJointKind
    qpos: int
    dof: int

    @property
    def quaternion_qpos(self) -> tuple[int, ...]:
        """The four ``qpos`` indices of its quaternion (w, x, y, z)."""
        start = self.qpos + (3 if self.kind == "free" else 0)
        return tuple(range(start, start + 4))

    @property
    def angular_dofs(self) -> tuple[int, ...]:
        """The three ``qvel`` indices of its angular velocity (body frame)."""
        start = self.dof + (3 if self.kind == "free" else 0)
        return tuple(range(start, start + 3))

    @property
    def linear_dofs(self) -> tuple[int, ...]:
        """The three ``qvel`` indices of a free joint's linear velocity (world frame)."""
        return tuple(range(self.dof, self.dof + 3)) if self.kind == "free" else ()

    def describe(self) -> str:
        """``qpos[0:7] / qvel[0:6]: free joint 'root' (...)``: where its entries sit."""
        if self.kind == "free":
            return (f"qpos[{self.qpos}:{self.qpos + 7}] / qvel[{self.dof}:{self.dof + 6}]: free joint {self.name!r} "
                    "(qpos: x, y, z, qw, qx, qy, qz; qvel: linear velocity in the world frame, then angular "
                    "velocity in the body frame)")
        return (f"qpos[{self.qpos}:{self.qpos + 4}] / qvel[{self.dof}:{self.dof + 3}]: ball joint {self.name!r} "
                "(qpos: qw, qx, qy, qz; qvel: angular velocity in the body frame)")


ActivationKind = Literal["integrator", "filter", "filterexact"]


@dataclass(frozen=True)
class ActivationLayout:
    """Actuator activations (MuJoCo ``data.act``): state of the actuators themselves, such
    as a position servo's target following the control through a filter (dm_control's
    quadruped). They are a known function of the control, so the model does not learn
    them: it advances them by MuJoCo's rule (:func:`neural_sim.model.activations.advance`)
    and its networks take them as inputs beside the action.

    :param actuators: index in the action vector of each activation's actuator.
    :param kinds: ``"integrator"`` (``act_dot = ctrl``), ``"filter"`` (``(ctrl - act) / tau``,
        Euler steps) or ``"filterexact"`` (the same filter, exact exponential steps).
    :param time_constants: each filter's ``tau`` in seconds (unused by integrators).
    :param control_limited: whether MuJoCo clamps the actuator's control to its range
        before it enters the activation.
    :param control_low: lower end of that range (0 where not limited).
    :param control_high: upper end.
    :param low: lower end of each activation's range (network inputs are scaled by it).
    :param high: upper end.
    :param clamped: whether MuJoCo clamps the activation to that range.
    :param physics_steps: physics steps per control step (the rule runs once per physics step).
    :param physics_timestep: seconds per physics step.
    """

    actuators: tuple[int, ...]
    kinds: tuple[ActivationKind, ...]
    time_constants: tuple[float, ...]
    control_limited: tuple[bool, ...]
    control_low: tuple[float, ...]
    control_high: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    clamped: tuple[bool, ...]
    physics_steps: int
    physics_timestep: float

    @property
    def size(self) -> int:
        """Number of activations (MuJoCo ``na``)."""
        return len(self.actuators)


@dataclass(frozen=True)
class StateLayout:
    """What the physics state and action vectors hold.

    :param nq: number of generalised positions (MuJoCo ``qpos``).
    :param nv: number of generalised velocities (MuJoCo ``qvel``).
    :param nu: number of actuators (action size).
    :param dt: control timestep in seconds: one ``step`` advances this much time.
    :param action_low: lower action bound per actuator.
    :param action_high: upper action bound per actuator.
    :param angle_qpos: indices of unlimited hinge angles, fed to networks as (sin, cos).
    :param invariant_qpos: indices of translation-invariant coordinates (a free root's x),
        left out of network inputs because the dynamics do not depend on them.
    :param velocity_lag: ``dq/dt = v + velocity_lag * dv/dt``. Zero for data from a smooth
        integrator (MuJoCo RK4). Half the physics timestep for semi-implicit Euler (MuJoCo's
        default), whose position update ``q' = q + h v'`` is the flow of that modified
        equation up to O(h^3) per physics step; with ``dq/dt = v`` alone a model keeps an
        error of ``h^2 a / 2`` per step that no training removes.
    :param contact_kinematics: heights of the points that can touch the floor, for planar
        robots (``None`` for others); networks see them when ``ModelConfig.contact_features``.
    :param contact_tree: the same for robots that are not planar, by forward kinematics over
        their body tree (``None`` for planar robots and robots with ball joints).
    :param rotation_joints: free and ball joints, whose orientation is a unit quaternion
        (``nq = nv + len(rotation_joints)``); every other joint is a hinge or slide with one
        ``qpos`` and one ``qvel``.
    :param activations: the actuators' own state that the networks take beside the action
        (``None``: none, or a model trained without them).
    """

    nq: int
    nv: int
    nu: int
    dt: float
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    angle_qpos: tuple[int, ...] = ()
    invariant_qpos: tuple[int, ...] = ()
    velocity_lag: float = 0.0
    contact_kinematics: ContactKinematics | None = None
    contact_tree: ContactTree | None = None
    rotation_joints: tuple[RotationJoint, ...] = ()
    activations: ActivationLayout | None = None

    @property
    def state_size(self) -> int:
        """Length of a state vector, ``nq + nv``."""
        return self.nq + self.nv

    @property
    def na(self) -> int:
        """Number of actuator activations the model takes (0 without)."""
        return self.activations.size if self.activations is not None else 0

    @property
    def input_size(self) -> int:
        """Width of the model's per-step input: the action, then the activations, ``nu + na``."""
        return self.nu + self.na

    @property
    def quaternion_qpos(self) -> tuple[int, ...]:
        """Every ``qpos`` index that belongs to a quaternion, joint by joint."""
        return tuple(i for joint in self.rotation_joints for i in joint.quaternion_qpos)

    def scalar_qpos_dofs(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """``(qpos indices, their qvel indices)`` of every position that is not part of a
        quaternion: hinges, slides and free joints' x, y, z, for which ``dq/dt = v``."""
        quaternion = set(self.quaternion_qpos)
        qpos = tuple(i for i in range(self.nq) if i not in quaternion)
        angular = {d for joint in self.rotation_joints for d in joint.angular_dofs}
        dofs = tuple(d for d in range(self.nv) if d not in angular)
        return qpos, dofs

    def entry_name(self, index: int) -> str:
        """``"qpos[3] (free joint 'root', qw)"``: what state entry ``index`` is."""
        name = f"qpos[{index}]" if index < self.nq else f"qvel[{index - self.nq}]"
        for joint in self.rotation_joints:
            labels: tuple[str, ...]
            if index < self.nq:
                labels = ("x", "y", "z", "qw", "qx", "qy", "qz") if joint.kind == "free" else ("qw", "qx", "qy", "qz")
                offset = index - joint.qpos
            else:
                labels = (("vx", "vy", "vz", "wx", "wy", "wz") if joint.kind == "free" else ("wx", "wy", "wz"))
                offset = index - self.nq - joint.dof
            if 0 <= offset < len(labels):
                return f"{name} ({joint.kind} joint {joint.name!r}, {labels[offset]})"
        return name

    def describe(self) -> str:
        """Which state entries are which joint: spelled out in errors about a state's shape."""
        parts = [joint.describe() for joint in self.rotation_joints]
        scalar_q, _ = self.scalar_qpos_dofs()
        free_xyz = {joint.qpos + i for joint in self.rotation_joints if joint.kind == "free" for i in range(3)}
        hinges = [i for i in scalar_q if i not in free_xyz]
        if hinges:
            parts.append(f"{len(hinges)} hinge/slide joint(s) at qpos {_ranges(hinges)}")
        return f"state = [qpos ({self.nq}), qvel ({self.nv})]; " + "; ".join(parts)

    def without_contact_kinematics(self) -> StateLayout:
        """The layout less its contact kinematics and activations: what must match between
        two models of one robot (checkpoints written before layouts carried them lack them)."""
        return dataclasses.replace(self, contact_kinematics=None, contact_tree=None, activations=None)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the vector field.

    ``mosim``: ``dv/dt = M^-1(q) [B(q, v) + A(u)] + sum_i C_i(q, v, u)`` with
    ``M^-1 = L L^T`` (the paper's rigid-body-shaped predictor plus correctors).
    ``residual``: ``dv/dt = R(q, v, u)``, one plain ResNet with no rigid-body structure
    (the paper's inductive-bias ablation).

    :param architecture: ``"mosim"`` or ``"residual"``.
    :param activation: ``"softplus"`` or ``"swish"``.
    :param position_encoder: ResNet L(q) giving the Cholesky factor of ``M^-1``.
    :param state_encoder: ResNet B(q, v), state-dependent generalised forces.
    :param action_encoder: MLP A(u), actuator forces (``blocks`` = hidden layers).
    :param correctors: one ResNet C_i(q, v, u) per corrector; may be empty.
    :param residual: the ResNet of the ``residual`` architecture.
    :param contact_features: also feed the networks the height above the floor and the
        vertical velocity of every point that can touch it (from the layout's
        ``contact_kinematics`` or ``contact_tree``): contacts decide locomotion, and a network infers them from
        joint angles only approximately.
    """

    architecture: Architecture = "mosim"
    activation: Activation = "softplus"
    position_encoder: NetworkConfig = NetworkConfig(3, 64)
    state_encoder: NetworkConfig = NetworkConfig(3, 64)
    action_encoder: NetworkConfig = NetworkConfig(1, 32)
    correctors: tuple[NetworkConfig, ...] = (NetworkConfig(5, 64),)
    residual: NetworkConfig = NetworkConfig(3, 128)
    contact_features: bool = False


@dataclass(frozen=True)
class IntegratorConfig:
    """How one control step is integrated (torchdiffeq).

    :param method: ``"rk4"`` (fixed step), ``"dopri5"`` (adaptive) or ``"euler"``: the
        discrete-time head, semi-implicit Euler ``v' = v + h a(q, v, u)``, ``q' = q + h v'``
        per substep -- one field evaluation a substep, and the update MuJoCo's default
        integrator takes each physics step.
    :param substeps: rk4 or euler steps per control step.
    :param rtol: dopri5 relative tolerance.
    :param atol: dopri5 absolute tolerance.
    """

    method: IntegratorMethod = "rk4"
    substeps: int = 1
    rtol: float = 1e-6
    atol: float = 1e-8


@dataclass(frozen=True)
class Normalisation:
    """Affine maps between raw physics units and the networks' unit-scale inputs/outputs.

    Computed from training data; ``acc_std`` scales the vector field's output so that the
    networks predict accelerations of order one. ``contact_mean`` and ``contact_std``
    standardise the contact features (heights, then vertical velocities; empty without them).
    """

    q_mean: tuple[float, ...]
    q_std: tuple[float, ...]
    v_mean: tuple[float, ...]
    v_std: tuple[float, ...]
    acc_std: tuple[float, ...]
    contact_mean: tuple[float, ...] = ()
    contact_std: tuple[float, ...] = ()


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything needed to rebuild a simulator's network before loading its weights."""

    layout: StateLayout
    model: ModelConfig
    integrator: IntegratorConfig
    normalisation: Normalisation


def _ranges(indices: list[int]) -> str:
    """``[7:23]`` for consecutive indices, else the list."""
    if indices == list(range(indices[0], indices[-1] + 1)):
        return f"[{indices[0]}:{indices[-1] + 1}]"
    return str(indices)


def default_normalisation(layout: StateLayout) -> Normalisation:
    """Identity normalisation: used before statistics of training data are known."""
    return Normalisation(
        q_mean=(0.0,) * layout.nq,
        q_std=(1.0,) * layout.nq,
        v_mean=(0.0,) * layout.nv,
        v_std=(1.0,) * layout.nv,
        acc_std=(1.0,) * layout.nv,
    )


# -- dict <-> dataclass ---------------------------------------------------------------

T = TypeVar("T")


def to_dict(config: Any) -> dict[str, Any]:
    """Turn a (nested) config dataclass into JSON-ready dicts and lists."""
    return _jsonable(dataclasses.asdict(config))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def from_dict(cls: type[T], data: Any, where: str = "config") -> T:
    """Build dataclass ``cls`` from JSON data, checking keys and types.

    :param cls: the dataclass type to build.
    :param data: parsed JSON.
    :param where: dotted path used in error messages.
    :raises ValueError: naming the offending key when a key is unknown, missing or of the
        wrong type.
    """
    return typing.cast(T, _convert(cls, data, where))


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object, got {type(value).__name__}")
        hints = get_type_hints(tp)
        names = {f.name for f in dataclasses.fields(tp)}
        unknown = sorted(set(value) - names)
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}; accepted: {sorted(names)}")
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in value:
                kwargs[f.name] = _convert(hints[f.name], value[f.name], f"{where}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"{where}: missing required key {f.name!r}")
        return tp(**kwargs)
    if origin is Literal:
        if value not in get_args(tp):
            raise ValueError(f"{where}: {value!r} is not one of {list(get_args(tp))}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {type(value).__name__}")
        (item_type, _ellipsis) = get_args(tp)
        return tuple(_convert(item_type, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object, got {type(value).__name__}")
        return dict(value)
    if origin in (typing.Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        return _convert(next(o for o in options if o is not type(None)), value, where)
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int or tp is str or tp is bool:
        if type(value) is not tp:
            raise ValueError(f"{where}: expected {tp.__name__}, got {value!r}")
        return value
    raise TypeError(f"{where}: unsupported config type {tp!r}")  # a bug in neural-sim


__all__ = [
    "ContactKinematics",
    "ContactTree",
    "IntegratorConfig",
    "ModelConfig",
    "NetworkConfig",
    "Normalisation",
    "RotationJoint",
    "SimulatorConfig",
    "StateLayout",
    "TreeBody",
    "TreeJoint",
    "default_normalisation",
    "from_dict",
    "to_dict",
]
