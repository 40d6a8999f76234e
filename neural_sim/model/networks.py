"""The two building blocks of every vector field: a ResNet and an MLP."""

from __future__ import annotations

import torch
from torch import nn

from neural_sim.model.config import Activation, NetworkConfig


def make_activation(name: Activation) -> nn.Module:
    """Return the activation module called ``name`` (``softplus`` or ``swish``)."""
    if name == "softplus":
        return nn.Softplus()
    if name == "swish":
        return nn.SiLU()
    raise ValueError(f"unknown activation {name!r}; accepted: 'softplus', 'swish'")


def _output_layer(width: int, out_features: int, gain: float) -> nn.Linear:
    """A last layer with weights scaled by ``gain`` and zero bias."""
    layer = nn.Linear(width, out_features)
    with torch.no_grad():
        layer.weight.mul_(gain)
        layer.bias.zero_()
    return layer


class ResidualBlock(nn.Module):
    """``act(x + fc2(act(fc1(x))))``."""

    def __init__(self, width: int, activation: Activation) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        return self.act(x + self.fc2(self.act(self.fc1(x))))


class ResNet(nn.Module):
    """``Linear(in, w) -> act -> blocks x ResidualBlock(w) -> Linear(w, out)``.

    :param in_features: input size.
    :param out_features: output size.
    :param size: number of residual blocks and width.
    :param activation: activation name.
    :param output_gain: scale of the last layer's initial weights; a small gain makes the
        network start close to a constant, which is how correctors should start.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        size: NetworkConfig,
        activation: Activation,
        output_gain: float = 1.0,
    ) -> None:
        super().__init__()
        self.input = nn.Linear(in_features, size.width)
        self.act = make_activation(activation)
        self.blocks = nn.Sequential(*(ResidualBlock(size.width, activation) for _ in range(size.blocks)))
        self.output = _output_layer(size.width, out_features, output_gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the network to ``x`` of shape ``[..., in_features]``."""
        return self.output(self.blocks(self.act(self.input(x))))


class MLP(nn.Module):
    """``Linear(in, w) -> act -> blocks x (Linear(w, w) -> act) -> Linear(w, out)``."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        size: NetworkConfig,
        activation: Activation,
        output_gain: float = 1.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(in_features, size.width), make_activation(activation)]
        for _ in range(size.blocks):
            layers += [nn.Linear(size.width, size.width), make_activation(activation)]
        self.output = _output_layer(size.width, out_features, output_gain)
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the network to ``x`` of shape ``[..., in_features]``."""
        return self.output(self.body(x))
