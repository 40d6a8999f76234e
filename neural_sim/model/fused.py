"""Inference-time layouts of the vector fields: the same functions in fewer tensor operations.

At batch 1 on a CPU, a step's cost is the number of tensor operations, not arithmetic.

- :class:`FusedMoSimField`: the position encoder, state encoder and correctors of a MoSim
  field see overlapping inputs and usually share a width, so their first layers and their
  common residual blocks run as one ``baddbmm`` per layer over a stacked weight tensor
  (inputs a network does not see get zero weights). Deeper networks finish their remaining
  blocks and every network its output layer on its own. About half the operations.
- :class:`FusedResidualField`: the input standardisation, the (sin, cos) selection and the
  action scaling are folded into the first layer's weights, and the output scaling, the
  velocity lag and the assembly of ``d(q, v)/dt`` into the last. About 40% fewer operations.
- :class:`LowPrecisionBlocks`: a residual network's hidden blocks, most of a step's
  arithmetic at large batches, in bfloat16; the first and last layers and the integration
  stay in float32.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import cast

import torch
from torch import nn

from neural_sim.model.dynamics import MoSimField, ResidualField, VectorField
from neural_sim.model.networks import ResNet

_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "softplus": nn.functional.softplus, "swish": nn.functional.silu
}


class GroupedResNets(nn.Module):
    """The first layer and the first ``depth`` residual blocks of ResNets of equal width.

    :param nets: ResNets with the same hidden width.
    :param columns: for each net, the columns of the shared input it reads.
    :param input_size: width of the shared input.
    :param activation: the nets' activation name.
    :param hidden_dtype: the dtype of the shared blocks (the first layer stays float32).
    """

    weight_in: torch.Tensor
    bias_in: torch.Tensor
    fc1_weight: torch.Tensor
    fc1_bias: torch.Tensor
    fc2_weight: torch.Tensor
    fc2_bias: torch.Tensor

    def __init__(self, nets: list[ResNet], columns: list[slice], input_size: int, activation: str,
                 hidden_dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        width = nets[0].input.out_features
        weight_in = torch.zeros(len(nets), input_size, width)
        for k, (net, cols) in enumerate(zip(nets, columns, strict=True)):
            weight_in[k, cols] = net.input.weight.detach().T
        self.register_buffer("weight_in", weight_in)
        self.register_buffer("bias_in", torch.stack([n.input.bias.detach() for n in nets]).unsqueeze(1))
        self.depth = min(len(n.blocks) for n in nets)
        for name in ("fc1", "fc2"):
            weights = [torch.stack([getattr(n.blocks[i], name).weight.detach().T for n in nets])
                       for i in range(self.depth)]
            biases = [torch.stack([getattr(n.blocks[i], name).bias.detach() for n in nets]).unsqueeze(1)
                      for i in range(self.depth)]
            stacked_weights = torch.stack(weights) if weights else torch.zeros(0)
            stacked_biases = torch.stack(biases) if biases else torch.zeros(0)
            self.register_buffer(f"{name}_weight", stacked_weights.to(hidden_dtype))
            self.register_buffer(f"{name}_bias", stacked_biases.to(hidden_dtype))
        self.act = _ACTIVATIONS[activation]
        self.hidden_dtype = hidden_dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden states ``[K, B, width]`` (in ``hidden_dtype``) after the shared blocks, for
        input ``x`` ``[B, F]``."""
        h = self.act(torch.baddbmm(self.bias_in, x.expand(self.weight_in.shape[0], -1, -1), self.weight_in))
        h = h.to(self.hidden_dtype)
        for i in range(self.depth):
            inner = self.act(torch.baddbmm(self.fc1_bias[i], h, self.fc1_weight[i]))
            h = self.act(h + torch.baddbmm(self.fc2_bias[i], inner, self.fc2_weight[i]))
        return h


class FusedMoSimField(VectorField):
    """A :class:`MoSimField` evaluated with :class:`GroupedResNets` (inference only).

    The grouped layers are copies, made at construction: rebuild after the field's
    weights change (:class:`~neural_sim.model.simulator.Simulator` does this itself).

    :param field: the field (left untouched).
    :param hidden_dtype: the dtype of the hidden blocks of the grouped networks (their first
        and last layers, the other networks and the mass-matrix solve stay float32).
    """

    def __init__(self, field: MoSimField, hidden_dtype: torch.dtype = torch.float32) -> None:
        super().__init__(field.layout, field.normalisation)
        self.field = field
        features = field.features
        pos, vel, nu = features.position_size, features.velocity_size, field.layout.input_size
        nets: list[ResNet] = [field.position_encoder, field.state_encoder, *field.correctors]
        spans = [slice(0, pos), slice(0, pos + vel)] + [slice(0, pos + vel + nu)] * len(field.correctors)
        width = field.position_encoder.input.out_features
        self.grouped = [k for k, net in enumerate(nets) if net.input.out_features == width]
        self.group = GroupedResNets([nets[k] for k in self.grouped], [spans[k] for k in self.grouped],
                                    pos + vel + nu, field.config.activation, hidden_dtype)
        self._nets, self._spans = nets, spans
        # Each grouped network's blocks beyond the shared ones, in the hidden dtype.
        rest = [nn.Sequential(*cast(nn.Sequential, nets[k].blocks[self.group.depth :])) for k in self.grouped]
        self._rest = nn.ModuleList(rest if hidden_dtype == torch.float32
                                   else [LowPrecisionBlocks(blocks, hidden_dtype) for blocks in rest])

    def encode_action(self, u: torch.Tensor) -> torch.Tensor:
        """Same context as the field's."""
        return self.field.encode_action(u)

    def acceleration(self, q: torch.Tensor, v: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Raw ``dv/dt``, as :meth:`MoSimField.acceleration`."""
        field, nv = self.field, self.layout.nv
        action_force, scaled_u = context[..., :nv], context[..., nv:]
        x = torch.cat([field.features.positions(q), field.features.velocities(v), scaled_u], dim=-1)
        hidden = self.group(x)
        outputs: list[torch.Tensor] = []
        for k, net in enumerate(self._nets):
            if k in self.grouped:
                index = self.grouped.index(k)
                outputs.append(net.output(self._rest[index](hidden[index]).float()))
            else:
                outputs.append(net(x[..., self._spans[k]]))
        return field.combine(outputs[0], outputs[1] + action_force, outputs[2:])



class FusedResidualField(VectorField):
    """A :class:`ResidualField` with its affine pre- and post-processing folded into its
    first and last layers (inference only; weights copied at construction, folded in float64).

    The first layer reads ``[sin(state), cos(state), state, u]`` in raw units: columns of
    coordinates a feature does not use are zero (sin/cos of non-angles, raw angles and
    translation-invariant positions). The last layer reads ``[hidden, state]`` and returns
    ``d(q, v)/dt = (v + lag * a, a)`` directly.
    """

    input_weight: torch.Tensor
    input_bias: torch.Tensor
    output_weight: torch.Tensor
    output_bias: torch.Tensor

    def __init__(self, field: ResidualField) -> None:
        super().__init__(field.layout, field.normalisation)
        layout, features, net = field.layout, field.features, field.network
        nq, nv, nu, n = layout.nq, layout.nv, layout.input_size, layout.state_size
        angle, linear = features.angle_idx.tolist(), features.linear_idx.tolist()
        self.uses_angles = bool(angle)
        weight = net.input.weight.detach().double()  # columns: sin, cos, linear q, v, scaled inputs
        width = weight.shape[0]
        offset = 2 * n if self.uses_angles else 0
        folded = torch.zeros(width, offset + n + nu, dtype=torch.float64)
        bias = net.input.bias.detach().double().clone()

        def fold(columns: torch.Tensor, targets: list[int], mean: torch.Tensor, std: torch.Tensor) -> None:
            # W (x - mean) / std  ==  (W / std) x - (W / std) mean
            scaled = columns / std.double()
            folded[:, targets] = scaled
            bias.sub_(scaled @ mean.double())

        na = len(angle)
        if self.uses_angles:
            folded[:, angle] = weight[:, :na]
            folded[:, [n + i for i in angle]] = weight[:, na : 2 * na]
        nl = len(linear)
        fold(weight[:, 2 * na : 2 * na + nl], [offset + i for i in linear], features.q_mean, features.q_std)
        fold(weight[:, 2 * na + nl : 2 * na + nl + nv], [offset + nq + i for i in range(nv)],
             features.v_mean, features.v_std)
        fold(weight[:, 2 * na + nl + nv :], [offset + n + i for i in range(nu)],
             features.input_center, features.input_half_range)
        self.register_buffer("input_weight", folded.T.float().contiguous())
        self.register_buffer("input_bias", bias.float())
        self.blocks: nn.Module = net.blocks
        # d(q, v)/dt = [h, state] @ output_weight + output_bias, with a = acc_std * (W h + b).
        acc_std = field.acc_std.double()
        w_out, b_out = net.output.weight.detach().double(), net.output.bias.detach().double()
        acc_weight, acc_bias = acc_std.unsqueeze(-1) * w_out, acc_std * b_out
        lag = layout.velocity_lag
        output_weight = torch.zeros(width + n, n, dtype=torch.float64)
        output_weight[:width, :nq] = lag * acc_weight.T
        output_weight[:width, nq:] = acc_weight.T
        output_weight[width + nq + torch.arange(nv), torch.arange(nv)] = 1.0  # dq/dt picks up v
        self.register_buffer("output_weight", output_weight.float())
        self.register_buffer("output_bias", torch.cat([lag * acc_bias, acc_bias]).float())
        self.act = net.act

    def encode_action(self, u: torch.Tensor) -> torch.Tensor:
        """The raw action: its scaling lives in the first layer."""
        return u

    def forward(self, state: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """``d state / dt``, as :meth:`ResidualField.forward` with ``context`` the raw action."""
        parts = [torch.sin(state), torch.cos(state), state, context] if self.uses_angles else [state, context]
        h = self.act(torch.addmm(self.input_bias, torch.cat(parts, dim=-1), self.input_weight))
        h = self.blocks(h)
        return torch.addmm(self.output_bias, torch.cat([h, state], dim=-1), self.output_weight)


class LowPrecisionBlocks(nn.Module):
    """Residual blocks evaluated in ``dtype`` (a converted copy of their weights), float32 in
    and out (inference only).

    :param blocks: the blocks (left untouched).
    :param dtype: e.g. ``torch.bfloat16``.
    """

    def __init__(self, blocks: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.blocks = copy.deepcopy(blocks).to(dtype)
        self.dtype = dtype

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """The blocks of ``h`` in ``dtype``, returned in ``h``'s dtype."""
        return cast(torch.Tensor, self.blocks(h.to(self.dtype))).to(h.dtype)
