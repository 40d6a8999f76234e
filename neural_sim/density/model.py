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
from typing import Literal

import numpy as np
import torch
import zuko
from torch import nn

from neural_sim.model.config import Normalisation, StateLayout
from neural_sim.model.dynamics import StateFeatures
from neural_sim.model.tracing import TracedFunction

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
        at batch 1, equal to float32 rounding): what environments call every step."""
        return self._fast(states, actions)

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
