"""The region of state space a model's training data covers.

A learned simulator is trusted only where its data went: far outside, it extrapolates, and
an agent that finds such a state is paid for the model's error. :class:`DataDomain` holds,
per checked state dimension, the range of the training data widened by a margin; the envs
end an episode that leaves it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import torch

from neural_sim.model.config import StateLayout
from neural_sim.model.rotations import body_frame_states, body_frame_tensor

#: Margin added on each side, as a fraction of the data's range per dimension. Chosen with
#: ``neural-sim fit-domain`` (held-out data the model never saw, per margin: how often a real
#: state falls outside); see ``benchmarks/results/domain/``.
DEFAULT_MARGIN = 0.25


@dataclass(frozen=True)
class DataDomain:
    """Per state dimension, the range ``[low, high]`` of the training data, widened by
    ``margin * (high - low)`` on each side.

    Unlimited hinge angles (fed to networks as sin and cos), quaternions (any orientation
    is a valid one; the networks see gravity in the body frame) and translation-invariant
    coordinates (never fed) are not checked: any value of them is inside. A free joint's
    linear velocity is checked in its body frame, as the networks see it, so a heading the
    data never had does not leave the domain (:func:`from_states` and :func:`outside` turn
    it there).

    :param dims: the checked indices of ``[qpos, qvel]``.
    :param low: the data's minimum in each checked dimension.
    :param high: the data's maximum in each checked dimension.
    :param margin: the widening, as a fraction of each dimension's range.
    :param samples: how many states the range was measured on.
    :param fit: how it was measured (command, data) and what the margin costs on held-out
        data (``neural-sim fit-domain``).
    :param body_frame: free joints' linear velocities are checked in their body frames
        (robots with free joints).
    """

    dims: tuple[int, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    margin: float = DEFAULT_MARGIN
    samples: int = 0
    fit: dict[str, Any] = field(default_factory=dict)
    body_frame: bool = False

    @classmethod
    def from_states(cls, states: np.ndarray, layout: StateLayout, margin: float = DEFAULT_MARGIN) -> DataDomain:
        """The domain of ``[N, nq + nv]`` training states.

        :raises ValueError: no states, a non-finite one, or a negative margin.
        """
        states = np.asarray(states, dtype=np.float64).reshape(-1, layout.state_size)
        if len(states) == 0 or not np.isfinite(states).all():
            raise ValueError("a data domain needs at least one state, all finite")
        if not (np.isfinite(margin) and margin >= 0):
            raise ValueError(f"margin must be a finite fraction >= 0, got {margin}")
        skipped = {*layout.angle_qpos, *layout.invariant_qpos, *layout.quaternion_qpos}
        dims = tuple(i for i in range(layout.state_size) if i not in skipped)
        checked = body_frame_states(states, layout)[:, list(dims)]
        return cls(dims, tuple(checked.min(0).tolist()), tuple(checked.max(0).tolist()), float(margin), len(states),
                   body_frame=bool(layout.rotation_joints))

    def with_margin(self, margin: float) -> DataDomain:
        """The same data range with another margin."""
        return dataclasses.replace(self, margin=float(margin))

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """The widened ``(low, high)`` of the checked dimensions."""
        return self._arrays[1], self._arrays[2]

    @cached_property
    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Checked indices and widened bounds as arrays, made once: envs check every step."""
        low, high = np.asarray(self.low), np.asarray(self.high)
        pad = self.margin * (high - low)
        return np.asarray(self.dims, dtype=np.int64), low - pad, high + pad

    def outside(self, states: np.ndarray, layout: StateLayout | None = None) -> np.ndarray:
        """Which checked dimensions of ``[..., nq + nv]`` states lie outside (NaN counts as
        outside): a bool array ``[..., len(dims)]``.

        :param layout: the states' layout; needed for a :attr:`body_frame` domain.
        :raises ValueError: a body-frame domain without ``layout``.
        """
        dims, low, high = self._arrays
        if self.body_frame:
            if layout is None:
                raise ValueError("this domain checks free joints' velocities in their body frames: pass the layout")
            states = body_frame_states(states, layout)
        values = np.asarray(states)[..., dims]
        return ~((values >= low) & (values <= high))

    def outside_tensor(self, states: torch.Tensor, layout: StateLayout | None = None) -> torch.Tensor:
        """:meth:`outside` of ``[N, nq + nv]`` states in torch, on their device (the batched env
        checks its states where they live)."""
        dims, low, high = self._tensors(states.device)
        if self.body_frame:
            if layout is None:
                raise ValueError("this domain checks free joints' velocities in their body frames: pass the layout")
            states = body_frame_tensor(states, layout)
        values = states[..., dims]
        return ~((values >= low) & (values <= high))

    def _tensors(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:attr:`_arrays` as tensors on ``device``, made once per device."""
        key = str(device)
        if key not in self._device_arrays:
            self._device_arrays[key] = tuple(  # type: ignore[assignment]
                torch.as_tensor(array, device=device) for array in self._arrays)
        return self._device_arrays[key]

    @cached_property
    def _device_arrays(self) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        return {}

    def dim_names(self, mask: np.ndarray, layout: StateLayout) -> list[str]:
        """``["qvel[3]", ...]``: the names of the checked dimensions a ``[len(dims)]`` mask marks."""
        return [_state_dim_name(self.dims[i], layout) for i in np.flatnonzero(mask)]


def _state_dim_name(index: int, layout: StateLayout) -> str:
    return f"qpos[{index}]" if index < layout.nq else f"qvel[{index - layout.nq}]"
