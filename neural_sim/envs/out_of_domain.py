"""What the envs do when a step leaves the region the model's training data covers.

Shared by the single and the batched env: which steps left (started outside, landed outside
or predicted a non-finite value), and the three policies a user chooses between.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import torch

from neural_sim.errors import DivergenceError, InputError, OutOfDomainError, OutOfDomainWarning
from neural_sim.model.config import StateLayout
from neural_sim.model.domain import DataDomain

OutOfDomain = Literal["truncate", "raise", "ignore"]
#: ``truncate`` (default): the episode ends, the run goes on; ``raise``: a
#: :class:`~neural_sim.errors.OutOfDomainError`; ``ignore``: step on as if trusted.
OUT_OF_DOMAIN = ("truncate", "raise", "ignore")

_warned = False


def check_mode(mode: str) -> OutOfDomain:
    """``mode`` if it is one of :data:`OUT_OF_DOMAIN`."""
    if mode not in OUT_OF_DOMAIN:
        raise InputError(f"unknown out_of_domain {mode!r}; accepted: {list(OUT_OF_DOMAIN)}")
    return mode  # type: ignore[return-value]


class DomainGuard:
    """Finds the steps that leave a checkpoint's data domain, in a batch of ``[N, nq + nv]``
    states, and applies the env's ``out_of_domain`` policy.

    :param domain: the checkpoint's domain (``None``: only non-finite predictions leave).
    :param layout: the state layout (for dimension names).
    :param mode: one of :data:`OUT_OF_DOMAIN`.
    """

    def __init__(self, domain: DataDomain | None, layout: StateLayout, mode: OutOfDomain) -> None:
        self.domain, self.layout, self.mode = domain, layout, check_mode(mode)

    @property
    def active(self) -> bool:
        """Whether steps are checked at all (not ``"ignore"``)."""
        return self.mode != "ignore"

    def leaving(self, previous: np.ndarray | torch.Tensor, predicted: np.ndarray | torch.Tensor
                ) -> tuple[np.ndarray, np.ndarray | None]:
        """``(left [N], outside [N, len(dims)] or None)``: the rows whose step starts outside,
        lands outside or predicts a non-finite value, and which checked dimensions are out.

        Tensors are checked on their device; only ``left`` comes back to the host, and
        ``outside`` too when a row left.
        """
        if isinstance(predicted, torch.Tensor):
            assert isinstance(previous, torch.Tensor)
            non_finite = ~torch.isfinite(predicted).all(-1)
            if self.domain is None:
                return non_finite.cpu().numpy(), None
            outside_t = self.domain.outside_tensor(previous, self.layout) | self.domain.outside_tensor(predicted,
                                                                                                        self.layout)
            left_t = non_finite | outside_t.any(-1)
            left_h = left_t.cpu().numpy()
            return left_h, (outside_t.cpu().numpy() if left_h.any() else None)
        assert isinstance(previous, np.ndarray)
        left = ~np.isfinite(predicted).all(-1)
        if self.domain is None:
            return left, None
        outside = self.domain.outside(previous, self.layout) | self.domain.outside(predicted, self.layout)
        return left | outside.any(-1), outside

    def check(self, previous: np.ndarray | torch.Tensor, predicted: np.ndarray | torch.Tensor, actions: np.ndarray,
              where: str) -> tuple[np.ndarray, np.ndarray | None] | None:
        """Apply the policy to a batch of steps ``previous -> predicted`` under ``actions``
        (states as arrays, or as tensors on any device: see :meth:`leaving`).

        :return: ``None`` under ``"ignore"``; else ``(left [N], dims)``, ``dims`` an object
            array naming what was out per row that left (``None`` elsewhere), or ``None`` when
            no row left.
        :raises DivergenceError: a non-finite prediction under ``"ignore"``.
        :raises OutOfDomainError: a row left, under ``"raise"``.
        """
        if not self.active:
            finite = (torch.isfinite(predicted).all(-1).cpu().numpy() if isinstance(predicted, torch.Tensor)
                      else np.isfinite(predicted).all(-1))
            if not finite.all():
                previous, predicted = _host(previous), _host(predicted)
                bad = int(np.flatnonzero(~finite)[0])
                raise DivergenceError(
                    f"{where}: the learned simulator produced a non-finite state from state "
                    f"{previous[bad].tolist()} and action {actions[bad].tolist()}: it was driven far outside its "
                    "training data"
                )
            return None
        left, outside = self.leaving(previous, predicted)
        if not left.any():
            return left, None
        previous, predicted = _host(previous), _host(predicted)  # a row left: rare, described on the host
        rows = np.flatnonzero(left)
        self.handle(rows, previous, predicted, outside, actions, where)
        dims = np.full(len(left), None, dtype=object)
        for row in rows:
            dims[row] = self.describe(int(row), previous, predicted, outside)
        return left, dims

    def describe(self, row: int, previous: np.ndarray, predicted: np.ndarray, outside: np.ndarray | None) -> list[str]:
        """What was out in ``row``: the dimension names, or ``"non-finite prediction"``."""
        names = self.domain.dim_names(outside[row], self.layout) if outside is not None and self.domain else []
        if not np.isfinite(predicted[row]).all():
            names.append("non-finite prediction")
        return names

    def handle(self, rows: np.ndarray, previous: np.ndarray, predicted: np.ndarray, outside: np.ndarray | None,
               actions: np.ndarray, where: str) -> None:
        """Raise (``"raise"``) or warn once per process (``"truncate"``) for the ``rows`` that left."""
        first = int(rows[0])
        names = self.describe(first, previous, predicted, outside)
        message = (
            f"{where}: the step from state {np.round(previous[first], 4).tolist()} under action "
            f"{np.round(actions[first], 4).tolist()} leaves the region the model's training data covers "
            f"({', '.join(names)}); the model is not trusted there"
        )
        if self.mode == "raise":
            raise OutOfDomainError(message + " (out_of_domain='raise')")
        global _warned
        if not _warned:
            _warned = True
            warnings.warn(message + ": the episode is truncated (out_of_domain='truncate'; this warning is shown "
                          "once per process, info['out_of_domain'] marks every such step)", OutOfDomainWarning,
                          stacklevel=3)


def _host(states: np.ndarray | torch.Tensor) -> np.ndarray:
    return states.cpu().numpy() if isinstance(states, torch.Tensor) else states
