"""Run a small module as one traced, frozen graph, rebuilt when its weights change.

At batch 1 on a CPU a small network's cost is per-operation overhead; a TorchScript trace
removes most of it (about 3x here). ``torch.compile`` was measured no faster for these
graphs and takes about 25 s to compile, so tracing is used while torch still offers it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TypeVar, cast

import torch
from torch import nn


class WeightVersions:
    """Notices in-place changes to a module's parameters (optimiser steps and
    ``load_state_dict`` bump tensor versions): for caches built from the weights.

    :param module: the module whose parameters to watch.
    """

    def __init__(self, module: nn.Module) -> None:
        self._module = module
        self.mark()

    def _current(self) -> list[int]:
        return [p._version for p in self._params]

    def changed(self) -> bool:
        """Whether any parameter changed since construction or the last :meth:`mark`."""
        return self._current() != self._versions

    def mark(self) -> None:
        """Take the module's parameters as they are now as the reference."""
        self._params = list(self._module.parameters())
        self._versions = self._current()


class TracedFunction:
    """Calls ``build()``'s module through a trace made on the first call's inputs.

    The trace is frozen (weights become constants) and rebuilt when any parameter of
    ``watch`` has been changed in place since (optimiser steps and ``load_state_dict``
    bump tensor versions). Where tracing is unavailable the eager module is used.

    :param build: makes the module to trace (called again on every rebuild).
    :param watch: the module whose parameters the trace depends on.
    """

    def __init__(self, build: Callable[[], nn.Module], watch: nn.Module) -> None:
        self._build = build
        self._weights = WeightVersions(watch)
        self._module: nn.Module | None = None

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Run the (re)traced module on ``inputs`` (without autograd)."""
        if torch.is_grad_enabled():  # checked first: a no_grad context per call costs a few us
            with torch.no_grad():
                return self(*inputs)
        if self._module is None or self._weights.changed():
            self._module = _trace(self._build().eval(), inputs)
            self._weights.mark()
        return self._module(*inputs)

    def reset(self) -> None:
        """Forget the trace (after moving the module to another device, say)."""
        self._module = None


def _trace(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> nn.Module:
    # Constants recorded by the trace are shape-independent here (zuko's base distribution
    # parameters); tests compare traced and eager at several batch sizes.
    traced = trace_function(module, inputs)
    if traced is module:  # pragma: no cover - tracing unavailable in this torch build
        return module
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates jit.freeze
            return torch.jit.optimize_for_inference(torch.jit.freeze(traced))  # type: ignore[arg-type]
    except (AttributeError, RuntimeError):  # pragma: no cover - depends on the torch build
        return module


Output = TypeVar("Output")


def trace_function(
    function: Callable[..., Output], inputs: tuple[torch.Tensor, ...]
) -> Callable[..., Output]:
    """``function`` (a pure tensor function whose operations do not depend on its inputs'
    values) as a TorchScript trace made on ``inputs``; ``function`` itself where tracing
    is unavailable. Batch sizes may differ from the example's when no operation reads a
    size as a Python number."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates jit.trace
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            return cast(Callable[..., Output], torch.jit.trace(function, inputs, check_trace=False))
    except (AttributeError, RuntimeError):  # pragma: no cover - depends on the torch build
        return function
