"""Measure the region of state space a checkpoint's training data covers, and what the
margin around it costs on held-out real data.

The envs truncate an episode that leaves the region (see
:class:`~neural_sim.model.domain.DataDomain`). Too tight a margin cuts real trajectories the
model predicts well; too loose a one lets an agent reach states the model never saw. The
figure that decides it: how often a held-out real trajectory (random actions, a seed the
training never used) would be cut.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from neural_sim.model.config import StateLayout
from neural_sim.model.domain import DEFAULT_MARGIN, DataDomain
from neural_sim.pipeline.collect import Dataset

#: Margins the held-out report compares (fractions of each dimension's range).
MARGINS = (0.0, 0.05, 0.1, 0.25, 0.5)


def held_out_cuts(domain: DataDomain, held_out: Dataset, layout: StateLayout,
                  margins: tuple[float, ...] = MARGINS) -> dict[str, Any]:
    """Per margin, how much of a held-out real data set the domain would cut.

    :return: ``{"<margin>": {"steps": fraction of transitions that start or land outside,
        "sequences": fraction of sequences cut before their end, "dims": the dimensions
        found outside, most often first}}``.
    """
    report: dict[str, Any] = {}
    states = held_out.states
    for margin in margins:
        outside = domain.with_margin(margin).outside(states, layout)  # [N, T + 1, D]
        step_out = outside[:, :-1] | outside[:, 1:]
        counts = step_out.sum((0, 1))
        names = domain.dim_names(np.ones(len(counts), dtype=bool), layout)
        report[f"{margin:g}"] = {
            "steps": float(step_out.any(-1).mean()),
            "sequences": float(step_out.any((1, 2)).mean()),
            "dims": [names[i] for i in np.argsort(-counts, kind="stable") if counts[i] > 0][:5],
        }
    return report


def fit_domain(data: Dataset, layout: StateLayout, held_out: dict[str, Dataset] | None = None,
               margin: float = DEFAULT_MARGIN, command: str = "") -> DataDomain:
    """The domain of a training data set, with the held-out cuts of each margin in ``fit``.

    :param data: the checkpoint's training data.
    :param layout: its state layout (which dimensions are checked).
    :param held_out: real data the training never saw, by name (``"random"``: random
        actions; ``"agent"``: a trained agent's episodes); none: no held-out report.
    :param margin: the margin the envs use.
    :param command: the command line to record.
    :raises ValueError: the data has no finite state.
    """
    states = data.states.reshape(-1, layout.state_size)
    domain = DataDomain.from_states(states[np.isfinite(states).all(-1)], layout, margin)  # training skips the rest
    fit: dict[str, Any] = {"command": command, "data": dataclasses.asdict(data.info)}
    if held_out:
        fit["held_out"] = {name: {"data": dataclasses.asdict(d.info), "cuts": held_out_cuts(domain, d, layout)}
                           for name, d in held_out.items()}
    return dataclasses.replace(domain, fit=fit)
