"""A normalising flow over (state, action) that says how familiar the model is with an input.

The flow sees the same features as the dynamics networks (``(sin, cos)`` of unlimited
hinges, standardised positions and velocities, actions scaled to ``[-1, 1]``), further
standardised over the training data. Its log-density is exact and deterministic (same
input, same value), and needs no autograd, so environments can call it every step.

``penalty = sigmoid((log p - c) / k) - 1`` lies in ``(-1, 0)``; ``c`` and ``k`` are
calibrated per checkpoint from held-out training data (:func:`calibrate`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import zuko
from torch import nn

from neural_sim.errors import InputError
from neural_sim.model.config import Normalisation, StateLayout
from neural_sim.model.dynamics import StateFeatures
from neural_sim.model.tracing import TracedFunction, WeightVersions

FlowKind = Literal["nsf", "maf"]
FLOW_KINDS = ("nsf", "maf")

# Calibration: c is this quantile of held-out log-densities (penalty -0.5 there) ...
CALIBRATION_QUANTILE = 0.01
# ... and k puts the held-out median this many k above c (penalty about -0.02 there).
CALIBRATION_MEDIAN_SCALES = 4.0


@dataclass(frozen=True)
class DensityConfig:
    """Architecture, feature standardisation and calibration of a density model.

    :param kind: ``"nsf"`` (neural spline flow) or ``"maf"`` (masked affine flow), both zuko.
    :param transforms: number of flow transforms.
    :param hidden: hidden widths of each transform's conditioner network.
    :param feature_mean: mean of the flow's input features over the training data.
    :param feature_std: their standard deviation.
    :param c: log-density at which the penalty is -0.5.
    :param k: log-density scale of the penalty's sigmoid.
    :param fit: how the flow was fitted and calibrated (command, seed, data, quantiles).
    """

    kind: FlowKind
    transforms: int
    hidden: tuple[int, ...]
    feature_mean: tuple[float, ...]
    feature_std: tuple[float, ...]
    c: float = 0.0
    k: float = 1.0
    fit: dict[str, object] | None = None


def feature_size(layout: StateLayout, normalisation: Normalisation) -> int:
    """Number of (state, action) features the flow sees."""
    features = StateFeatures(layout, normalisation)
    return features.position_size + features.velocity_size + layout.nu


def build_flow(kind: str, features: int, transforms: int, hidden: tuple[int, ...]) -> nn.Module:
    """A zuko flow of ``kind`` over ``features`` dimensions."""
    if kind == "nsf":
        return zuko.flows.NSF(features, transforms=transforms, hidden_features=hidden)
    if kind == "maf":
        return zuko.flows.MAF(features, transforms=transforms, hidden_features=hidden)
    raise ValueError(f"unknown density flow {kind!r}; accepted: {list(FLOW_KINDS)}")


class DensityModel(nn.Module):
    """Log-density and penalty of (state, action) pairs.

    :param layout: the robot's state layout.
    :param normalisation: the dynamics model's normalisation (shared feature map).
    :param config: flow architecture, feature standardisation and calibration.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, layout: StateLayout, normalisation: Normalisation, config: DensityConfig) -> None:
        super().__init__()
        self.layout = layout
        self.config = config
        self.features = StateFeatures(layout, normalisation)
        size = feature_size(layout, normalisation)
        if len(config.feature_mean) != size or len(config.feature_std) != size:
            raise ValueError(f"density feature statistics must have {size} entries, got {len(config.feature_mean)}")
        self.flow = build_flow(config.kind, size, config.transforms, config.hidden)
        self.register_buffer("mean", torch.tensor(config.feature_mean, dtype=torch.float32), persistent=False)
        self.register_buffer("std", torch.tensor(config.feature_std, dtype=torch.float32), persistent=False)
        self._fast = TracedFunction(lambda: _LogDensity(self), self.flow)
        self._numpy: _NumpyFlow | None = None

    def raw_features(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Network-style features of (state, action), before standardisation."""
        q, v = states[..., : self.layout.nq], states[..., self.layout.nq :]
        return torch.cat(
            [self.features.positions(q), self.features.body_velocities(q, v), self.features.actions(actions)], dim=-1
        )

    def log_density(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``log p`` of each (state, action) row in standardised feature space, ``[B]``."""
        x = (self.raw_features(states, actions) - self.mean) / self.std
        return self.flow().log_prob(x)

    def fast_log_density(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """:meth:`log_density` without autograd through a traced graph (about 3x less overhead
        at batch 1, equal to float32 rounding): what batched environments call every step."""
        return self._fast(states, actions)

    def log_density_value(self, state: np.ndarray, action: np.ndarray) -> float:
        """:meth:`log_density` of one ``(state [nq + nv], action [nu])`` pair as a Python float:
        what a single env calls every step.

        A masked affine flow over hinge and slide joints (every shipped flow but those
        of floating-base robots) is evaluated in float64 NumPy from the
        flow's weights, about 5x cheaper at batch 1 than the traced torch graph (whose
        cost there is per-operation overhead); other flows and layouts go through
        :meth:`fast_log_density`. Both equal :meth:`log_density` to float32 rounding.

        :raises InputError: a state or action of the wrong shape.
        """
        layout = self.layout
        if np.shape(state) != (layout.nq + layout.nv,) or np.shape(action) != (layout.nu,):
            raise InputError(f"log_density_value takes one state of shape ({layout.nq + layout.nv},) "
                             f"(nq={layout.nq} + nv={layout.nv}) and one action of shape ({layout.nu},), "
                             f"got {np.shape(state)} and {np.shape(action)}")
        if self._numpy is None or self._numpy.weights.changed():
            self._numpy = _NumpyFlow.build(self)
        if self._numpy.usable:
            return self._numpy(state, action)
        states = torch.as_tensor(state, dtype=torch.float32, device=self.mean.device)[None]
        actions = torch.as_tensor(action, dtype=torch.float32, device=self.mean.device)[None]
        return float(self.fast_log_density(states, actions).item())

    def penalty(self, log_density: torch.Tensor) -> torch.Tensor:
        """``sigmoid((log p - c) / k) - 1``: in ``(-1, 0)``, reaching -1 in floating point far from the data."""
        return torch.sigmoid((log_density - self.config.c) / self.config.k) - 1.0

    def penalty_value(self, log_density: float) -> float:
        """:meth:`penalty` of one log-density as a Python float (a single env's step: no
        tensor operations, a tenth of their cost)."""
        z = (log_density - self.config.c) / self.config.k
        # sigmoid(z) - 1 == -1 / (1 + exp(z)), written so that exp never overflows.
        return -1.0 / (1.0 + math.exp(z)) if z < 0 else -math.exp(-z) / (1.0 + math.exp(-z))


class _LogDensity(nn.Module):
    def __init__(self, density: DensityModel) -> None:
        super().__init__()
        self.density = density

    def forward(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.density.log_density(states, actions)


class _NumpyFlow:
    """A masked affine flow's log-density in float64 NumPy, from the zuko module's weights.

    zuko's ``MaskedAutoregressiveTransform`` with a ``MonotonicAffineTransform``: the masked
    MLP's output, unflattened to ``(features, 2)``, is ``(shift, raw scale)`` per feature;
    ``log_scale = raw / (1 + |raw / log(slope)|)`` and ``z = x exp(log_scale) + shift``.
    The feature map's and the flow's standardisations are folded into one scale and offset.
    """

    def __init__(self, density: DensityModel, usable: bool) -> None:
        self.usable = usable
        self.weights = WeightVersions(density.flow)
        if not usable:
            return
        f = density.features

        def numpy(t: torch.Tensor) -> np.ndarray:
            return t.detach().to("cpu", torch.float64).numpy()

        self._nq = density.layout.nq
        self._angles, self._linear = numpy(f.angle_idx).astype(np.int64), numpy(f.linear_idx).astype(np.int64)
        # raw features [sin, cos, (q - qm) / qs, (v - vm) / vs, (u - uc) / uh], then (raw - mean) / std
        n_angles = len(self._angles)
        pre_scale = np.concatenate([np.ones(2 * n_angles), 1 / numpy(f.q_std), 1 / numpy(f.v_std),
                                    1 / numpy(f.u_half_range)])
        pre_offset = np.concatenate([np.zeros(2 * n_angles), -numpy(f.q_mean) / numpy(f.q_std),
                                     -numpy(f.v_mean) / numpy(f.v_std), -numpy(f.u_center) / numpy(f.u_half_range)])
        mean, std = numpy(density.mean), numpy(density.std)
        self._scale, self._offset = pre_scale / std, (pre_offset - mean) / std
        flow: Any = density.flow  # zuko's modules are untyped
        # per transform, its masked MLP's (weight * mask, bias) per layer
        self._transforms = [
            [(numpy(m.weight * m.get_buffer("mask")), numpy(m.bias))
             for m in transform.hyper if isinstance(m, nn.Linear)]
            for transform in flow.transform.transforms
        ]
        self._inv_log_slope = 1.0 / abs(math.log(_SLOPE))
        base = flow.base()
        loc, scale = numpy(base.base_dist.loc), numpy(base.base_dist.scale)
        self._loc, self._inv_scale = loc, 1 / scale
        self._constant = float(-0.5 * len(loc) * math.log(2 * math.pi) - np.log(scale).sum())

    @classmethod
    def build(cls, density: DensityModel) -> _NumpyFlow:
        """The evaluator of ``density``'s flow, ``usable`` only where its form is the one above."""
        flow: Any = density.flow
        usable = (
            isinstance(flow, zuko.flows.MAF)
            and not density.features.rotations.active
            and all(isinstance(t, zuko.flows.MaskedAutoregressiveTransform)
                    and t.univariate is zuko.transforms.MonotonicAffineTransform
                    and all(isinstance(m, (nn.Linear, nn.ReLU)) for m in t.hyper)
                    for t in flow.transform.transforms)
            and isinstance(flow.base, zuko.flows.UnconditionalDistribution)
            and isinstance(flow.base(), zuko.distributions.DiagNormal)
        )
        return cls(density, usable)

    def __call__(self, state: np.ndarray, action: np.ndarray) -> float:
        q = state[: self._nq]
        angles = q[self._angles]
        x = np.concatenate([np.sin(angles), np.cos(angles), q[self._linear], state[self._nq:], action])
        x = x * self._scale + self._offset
        log_det = 0.0
        for weights in self._transforms:
            h = x
            for w, b in weights[:-1]:
                h = np.maximum(w @ h + b, 0.0)
            w, b = weights[-1]
            out = w @ h + b
            raw = out[1::2]
            log_scale = raw / (1.0 + np.abs(raw) * self._inv_log_slope)
            x = x * np.exp(log_scale) + out[0::2]
            log_det += float(log_scale.sum())
        z = (x - self._loc) * self._inv_scale
        return float(-0.5 * (z @ z)) + log_det + self._constant


# zuko's MonotonicAffineTransform default minimum slope (the flows here are built with it).
_SLOPE = 1e-3


def calibrate(held_out_log_density: np.ndarray) -> tuple[float, float, dict[str, float]]:
    """``(c, k, quantiles)`` from log-densities of held-out in-distribution data.

    ``c`` is their 1% quantile, so 99% of familiar inputs get a penalty above -0.5, and
    ``k = (median - c) / 4``, so a typical familiar input gets about -0.02.
    """
    values = np.asarray(held_out_log_density, dtype=np.float64)
    c = float(np.quantile(values, CALIBRATION_QUANTILE))
    median = float(np.median(values))
    k = max((median - c) / CALIBRATION_MEDIAN_SCALES, 1e-3)
    quantiles = {f"q{int(q * 100):02d}": float(np.quantile(values, q)) for q in (0.01, 0.05, 0.5, 0.95)}
    return c, k, quantiles
