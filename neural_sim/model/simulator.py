"""The public face of a trained model: batched ``step`` and ``rollout`` on physics states."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Literal, TypeVar

import numpy as np
import torch

from neural_sim.errors import InputError
from neural_sim.model.activations import advance as advance_activations
from neural_sim.model.config import IntegratorConfig, SimulatorConfig
from neural_sim.model.dynamics import MoSimField, ResidualField, VectorField, build_vector_field
from neural_sim.model.fused import FusedMoSimField, FusedResidualField, LowPrecisionBlocks
from neural_sim.model.integrators import FixedStepRK4, SemiImplicitEuler, check_integrator, integrate_step
from neural_sim.model.rotations import check_quaternions
from neural_sim.model.tracing import TracedFunction

ArrayLike = TypeVar("ArrayLike", np.ndarray, torch.Tensor)

# Actions may exceed their bounds by float32 rounding of a policy's rescaling, no more.
ACTION_TOLERANCE = 1e-5
# Batches up to this size step on one CPU thread (see Simulator.fast_predict).
_SMALL_BATCH = 16
#: Precisions of :meth:`Simulator.fast_predict`'s hidden layers.
FastPrecision = Literal["float32", "bfloat16"]
FAST_PRECISIONS: tuple[str, ...] = ("float32", "bfloat16")


def _rollout(step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], states: torch.Tensor,
             actions: torch.Tensor) -> torch.Tensor:
    """``[B, H, S]`` states reached by ``step`` from ``states`` under ``actions`` ``[B, H, nu]``."""
    outputs = []
    current = states
    for t in range(actions.shape[1]):
        current = step(current, actions[:, t])
        outputs.append(current)
    return torch.stack(outputs, dim=1)


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device`` the model can run on.

    :raises InputError: not a device name, a device with no data (``meta``), or a CUDA
        device this machine does not have.
    """
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise InputError(f"device {device!r} is not a torch device ('cpu', 'cuda', 'cuda:1', ...): {error}") from error
    if resolved.type == "meta":
        raise InputError("device 'meta' holds no data; run the model on 'cpu' or 'cuda'")
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (resolved.index or 0) >= count:
            raise InputError(f"device {device!r} is not available: this machine has {count} usable CUDA device(s)")
    return resolved


class Simulator:
    """A learned simulator of one robot: physics state + action -> next physics state.

    States are ``[q, v]`` (MuJoCo ``qpos`` then ``qvel``, raw units), shape ``[B, nq + nv]``;
    actions are ``[B, nu]``, held constant over one control step of ``dt`` seconds. A single
    unbatched state ``[nq + nv]`` with action ``[nu]`` is accepted too. NumPy in gives NumPy
    out (same dtype); torch in gives torch out (same dtype and device), differentiable when
    the inputs require grad.

    :param config: dimensions, architecture, integrator and normalisation.
    :param field: the vector field; a freshly initialised one is built when omitted.
    :param device: where the model runs.
    """

    def __init__(
        self, config: SimulatorConfig, field: VectorField | None = None, device: str | torch.device = "cpu"
    ) -> None:
        check_integrator(config.integrator)
        self.config = config
        self.field = build_vector_field(config.layout, config.normalisation, config.model) if field is None else field
        self.device = check_device(device)
        self.field.to(self.device).eval()
        layout = config.layout
        self._action_low = torch.tensor(layout.action_low, dtype=torch.float32, device=self.device)
        self._action_high = torch.tensor(layout.action_high, dtype=torch.float32, device=self.device)
        self.fast_precision: FastPrecision = "float32"
        self._fast_step = TracedFunction(self._fast_step_module, self.field)
        # The euler method's step with autograd (training), sharing the field's weights;
        # None for the torchdiffeq methods.
        self._euler = (SemiImplicitEuler(self.field, self.dt, config.integrator.substeps,
                                         self.field.features.rotations, self.nq)
                       if config.integrator.method == "euler" else None)

    def set_fast_precision(self, precision: str) -> None:
        """The precision of :meth:`fast_predict`'s hidden layers (environments step through it).

        ``"bfloat16"`` runs the hidden blocks, most of the arithmetic at large batches, in
        bfloat16 (first and last layers, a MoSim field's mass-matrix solve and the RK4 sums
        stay float32):
        faster where the hardware has bfloat16 matmuls (CPUs with AVX512-BF16 or AMX, GPUs)
        and at large batches; slower at batch 1. Check its accuracy with ``neural-sim
        benchmark --precision bfloat16`` (the fast-path column).

        :raises InputError: an unknown precision, or bfloat16 for a MoSim field with contact
            features or quaternions (traced unfused).
        """
        if precision not in FAST_PRECISIONS:
            raise InputError(f"unknown precision {precision!r}; accepted: {list(FAST_PRECISIONS)}")
        if precision == "bfloat16" and not (isinstance(self.field, ResidualField) or self.field.features.foldable):
            raise InputError("precision 'bfloat16' needs a residual-architecture model or a MoSim one without "
                             "contact features or quaternions")
        self.fast_precision = precision  # type: ignore[assignment]
        self._fast_step.reset()

    # -- dimensions ------------------------------------------------------------------
    @property
    def nq(self) -> int:
        """Number of generalised positions."""
        return self.config.layout.nq

    @property
    def nv(self) -> int:
        """Number of generalised velocities."""
        return self.config.layout.nv

    @property
    def nu(self) -> int:
        """Number of actuators."""
        return self.config.layout.nu

    @property
    def dt(self) -> float:
        """Control timestep in seconds."""
        return self.config.layout.dt

    @property
    def state_size(self) -> int:
        """``nq + nv``."""
        return self.config.layout.state_size

    @property
    def integrator(self) -> IntegratorConfig:
        """How each step is integrated."""
        return self.config.integrator

    def with_integrator(self, integrator: IntegratorConfig) -> Simulator:
        """A simulator sharing this one's weights but integrating with ``integrator``."""
        config = dataclasses.replace(self.config, integrator=integrator)
        return Simulator(config, self.field, self.device)

    def to(self, device: str | torch.device) -> Simulator:
        """Move the model to ``device`` (in place) and return ``self``."""
        self.device = check_device(device)
        self.field.to(self.device)
        self._fast_step.reset()
        self._action_low = self._action_low.to(self.device)
        self._action_high = self._action_high.to(self.device)
        return self

    # -- public stepping -------------------------------------------------------------
    @property
    def na(self) -> int:
        """Number of actuator activations the model takes beside the action (0 without)."""
        return self.config.layout.na

    def step(self, states: ArrayLike, actions: ArrayLike, activations: ArrayLike | None = None) -> ArrayLike:
        """Predict the state one control step later.

        :param states: ``[B, nq + nv]`` (or ``[nq + nv]``).
        :param actions: ``[B, nu]`` (or ``[nu]``), inside the action bounds.
        :param activations: for a robot whose actuators carry activations (``na > 0``), their
            values at the start of the step, ``[B, na]`` (or ``[na]``); default zero, as at
            an episode start. :meth:`next_activations` advances them.
        :return: ``[B, nq + nv]`` (or ``[nq + nv]``), same type as ``states``.
        :raises InputError: wrong shape, non-finite values or out-of-bound actions.
        """
        state_t, action_t, unbatched = self._check_inputs(states, actions, rollout=False)
        inputs = torch.cat([action_t, self._start_activations(activations, state_t.shape[0], unbatched)], dim=-1)
        with torch.set_grad_enabled(state_t.requires_grad or action_t.requires_grad):
            result = self.predict(state_t, inputs)
        return self._output_like(states, result[0] if unbatched else result)

    def rollout(self, states: ArrayLike, actions: ArrayLike, activations: ArrayLike | None = None) -> ArrayLike:
        """Predict open loop through a sequence of actions.

        :param states: ``[B, nq + nv]`` start states (or ``[nq + nv]``).
        :param actions: ``[B, H, nu]`` actions (or ``[H, nu]``).
        :param activations: with ``na > 0``, the activations at the start, ``[B, na]`` (or
            ``[na]``; default zero); they advance by MuJoCo's rule under the actions.
        :return: ``[B, H, nq + nv]``: the state after each action (or ``[H, nq + nv]``).
        :raises InputError: wrong shape, non-finite values or out-of-bound actions.
        """
        state_t, action_t, unbatched = self._check_inputs(states, actions, rollout=True)
        start = self._start_activations(activations, state_t.shape[0], unbatched)
        inputs = self.rollout_inputs(action_t, start)
        with torch.set_grad_enabled(state_t.requires_grad or action_t.requires_grad):
            result = self.predict_rollout(state_t, inputs)
        return self._output_like(states, result[0] if unbatched else result)

    def next_activations(self, activations: ArrayLike, actions: ArrayLike) -> ArrayLike:
        """The actuator activations after one control step, by MuJoCo's rule.

        :param activations: ``[..., na]`` at the start of the step.
        :param actions: ``[..., nu]``.
        :return: ``[..., na]``, same type as ``activations``.
        :raises InputError: the robot's actuators carry no activations.
        """
        spec = self.config.layout.activations
        if spec is None:
            raise InputError("this model takes no actuator activations (na = 0)")
        # The rule is MuJoCo's arithmetic in float64: exact for float64 inputs.
        act_t, action_t = (self._to_tensor(x, name).double() if isinstance(x, torch.Tensor)
                           else torch.as_tensor(np.asarray(x, dtype=np.float64), device=self.device)
                           for x, name in ((activations, "activations"), (actions, "actions")))
        return self._output_like(activations, advance_activations(spec, act_t, action_t))

    def rollout_inputs(self, actions: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
        """The per-step inputs ``[B, H, nu + na]`` of an open-loop rollout: each action with
        the activations at the start of its step, advanced from ``activations`` ``[B, na]``."""
        spec = self.config.layout.activations
        if spec is None:
            return actions
        steps = []
        for t in range(actions.shape[1]):
            steps.append(activations)
            activations = advance_activations(spec, activations, actions[:, t])
        return torch.cat([actions, torch.stack(steps, dim=1)], dim=-1)

    def _start_activations(self, activations: ArrayLike | None, batch: int, unbatched: bool) -> torch.Tensor:
        """Checked ``[B, na]`` activations (zero when not given; ``[B, 0]`` without any)."""
        na = self.na
        if activations is None:
            return torch.zeros(batch, na, device=self.device)
        if na == 0:
            raise InputError("this model takes no actuator activations (na = 0): leave activations out")
        act_t = self._to_tensor(activations, "activations")
        expected = (na,) if unbatched else (batch, na)
        if tuple(act_t.shape) != expected:
            raise InputError(f"activations must have shape {list(expected)} (na={na}), got {tuple(act_t.shape)}")
        if not torch.isfinite(act_t).all():
            raise InputError("activations contain NaN or inf")
        return act_t.reshape(batch, na)

    # -- unchecked tensor paths (training, environments) -------------------------------
    def predict(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """One step on float32 tensors already on ``device``; no input checks. ``actions`` are
        the per-step inputs ``[B, nu + na]`` (the action, then the activations, if any)."""
        if self._euler is not None:
            return self._euler(states, actions)
        context = self.field.encode_action(actions)
        project = self.field.project if self.field.features.rotations.active else None
        return integrate_step(lambda y: self.field(y, context), states, self.dt, self.config.integrator, project)

    def predict_rollout(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``[B, H, nq + nv]`` open-loop rollout on tensors; no input checks."""
        return _rollout(self.predict, states, actions)

    @torch.no_grad()
    def fast_rollout(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """:meth:`predict_rollout` through :meth:`fast_predict`: the path environments take."""
        return _rollout(self.fast_predict, states, actions)

    def fast_predict(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """:meth:`predict` without autograd, through a traced graph when the integrator is rk4 or euler.

        torchdiffeq's rk4 arithmetic (equal results to float32 rounding, tested) with the
        field in its fused layout (:mod:`neural_sim.model.fused`), traced into one graph: a
        fraction of the per-call overhead. Environments step through it. The graph is
        rebuilt when the weights change in place (optimiser steps, ``load_state_dict``).
        dopri5 runs through torchdiffeq as in :meth:`predict`.
        """
        if self.config.integrator.method == "dopri5":
            with torch.no_grad():
                return self.predict(states, actions)
        threads = torch.get_num_threads()
        if threads == 1 or states.shape[0] > _SMALL_BATCH or self.device.type != "cpu":
            return self._fast_step(states, actions)
        # A small batch's matmuls are too small to split: extra threads only synchronise
        # (about 10% of a batch-1 step on two cores).
        torch.set_num_threads(1)
        try:
            return self._fast_step(states, actions)
        finally:
            torch.set_num_threads(threads)

    def _fast_step_module(self) -> torch.nn.Module:
        field: VectorField = self.field
        rotations = self.field.features.rotations
        # The fused layouts fold the inputs of plain (q, v, u) fields; a field with contact
        # features or quaternions is traced as it is.
        low = self.fast_precision == "bfloat16"
        if self.field.features.foldable:
            if isinstance(field, MoSimField):
                field = FusedMoSimField(field, torch.bfloat16 if low else torch.float32)
            elif isinstance(field, ResidualField):
                field = FusedResidualField(field)
        if low and not isinstance(field, FusedMoSimField):
            if isinstance(field, FusedResidualField):
                field.blocks = LowPrecisionBlocks(field.blocks, torch.bfloat16)
            else:
                assert isinstance(field, ResidualField)
                field = copy.deepcopy(field)  # the model itself stays float32
                # A module of the same call signature in place of the Sequential.
                field.network.blocks = LowPrecisionBlocks(field.network.blocks, torch.bfloat16)  # type: ignore[assignment]
        # The fused layouts build their tensors on the CPU: follow the field's device.
        if self.config.integrator.method == "euler":
            return SemiImplicitEuler(field, self.dt, self.config.integrator.substeps, rotations,
                                     self.nq).to(self.device)
        return FixedStepRK4(field, self.dt, self.config.integrator.substeps,
                            rotations if rotations.active else None).to(self.device)

    # -- input checking ---------------------------------------------------------------
    def _check_inputs(
        self, states: ArrayLike, actions: ArrayLike, rollout: bool
    ) -> tuple[torch.Tensor, torch.Tensor, bool]:
        state_t = self._to_tensor(states, "states")
        action_t = self._to_tensor(actions, "actions")
        n, nu = self.state_size, self.nu
        action_shape = "[B, H, nu]" if rollout else "[B, nu]"
        unbatched = state_t.dim() == 1
        if state_t.dim() not in (1, 2) or state_t.shape[-1] != n:
            layout = f"; {self.config.layout.describe()}" if self.config.layout.rotation_joints else ""
            raise InputError(
                f"states must have shape [B, {n}] or [{n}] (nq={self.nq} + nv={self.nv}{layout}), "
                f"got {tuple(state_t.shape)}"
            )
        expected_dim = (2 if rollout else 1) + (0 if unbatched else 1)
        if action_t.dim() != expected_dim or action_t.shape[-1] != nu:
            raise InputError(
                f"actions must have shape {action_shape} with nu={nu}"
                f"{' (unbatched: [H, nu])' if rollout else ' (unbatched: [nu])'} to go with states of shape "
                f"{tuple(state_t.shape)}, got {tuple(action_t.shape)}"
            )
        if unbatched:
            state_t, action_t = state_t.unsqueeze(0), action_t.unsqueeze(0)
        if action_t.shape[0] != state_t.shape[0]:
            raise InputError(
                f"batch sizes differ: states have {state_t.shape[0]} rows, actions {action_t.shape[0]}"
            )
        if not torch.isfinite(state_t).all():
            raise InputError("states contain NaN or inf")
        if not torch.isfinite(action_t).all():
            raise InputError("actions contain NaN or inf")
        if self.config.layout.rotation_joints:
            check_quaternions(state_t.detach().cpu().numpy(), self.config.layout, "states")
        too_low = action_t < self._action_low - ACTION_TOLERANCE
        too_high = action_t > self._action_high + ACTION_TOLERANCE
        if (too_low | too_high).any():
            raise InputError(
                f"actions outside the action bounds low={self.config.layout.action_low}, "
                f"high={self.config.layout.action_high} (the model was trained inside them; "
                "clip or rescale the actions first)"
            )
        return state_t, action_t, unbatched

    def _to_tensor(self, value: object, name: str) -> torch.Tensor:
        if isinstance(value, torch.Tensor):
            tensor = value
        else:
            try:
                array = np.asarray(value)
            except (TypeError, ValueError) as error:
                raise InputError(f"{name} must be a NumPy array or torch tensor: {error}") from error
            if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
                raise InputError(f"{name} must be real numbers, got dtype {array.dtype}")
            tensor = torch.from_numpy(np.ascontiguousarray(array))
        if tensor.is_complex() or tensor.dtype == torch.bool:
            raise InputError(f"{name} must be real numbers, got dtype {tensor.dtype}")
        try:
            return tensor.to(device=self.device, dtype=torch.float32)
        except (RuntimeError, NotImplementedError) as error:  # a meta tensor, an unusable device
            raise InputError(
                f"{name} is a tensor on device {tensor.device} that cannot be moved to the model's device "
                f"{self.device}: {error}"
            ) from error

    @staticmethod
    def _output_like(reference: ArrayLike, result: torch.Tensor) -> ArrayLike:
        if isinstance(reference, torch.Tensor):
            dtype = reference.dtype if reference.is_floating_point() else torch.float32
            return result.to(device=reference.device, dtype=dtype)
        ref = np.asarray(reference)
        dtype = ref.dtype if np.issubdtype(ref.dtype, np.floating) else np.float32
        return result.detach().cpu().numpy().astype(dtype, copy=False)
