"""``reacher-easy`` and ``reacher-hard`` for a batch of states, one target per env."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch

from neural_sim.robots.batched.base import StateTask, to_host, tolerance
from neural_sim.robots.dm_control import DmControlTask


class ReacherReach(StateTask):
    """``reacher-easy`` / ``reacher-hard`` for a batch, with one target per env.

    Targets are drawn as the stock task draws them (angle uniform in [0, 2 pi), radius
    uniform in [0.05, 0.20]), from each env's own generator.
    """

    #: The stock task's target radius range (literals in ``Reacher.initialize_episode``).
    TARGET_RADIUS = (0.05, 0.20)

    def __init__(self, bridge: DmControlTask, num_envs: int, device: torch.device | str = "cpu") -> None:
        model, named = bridge.physics.model, bridge.physics.named.model
        if not (np.allclose(model.body_quat, [1, 0, 0, 0]) and np.allclose(np.abs(model.jnt_axis), [0, 0, 1])):
            raise NotImplementedError("reacher's bodies are rotated or its hinges do not turn about z")
        self._base = torch.tensor(named.body_pos["arm"][:2], dtype=torch.float64, device=device)
        self._upper = torch.tensor(named.body_pos["hand"][:2], dtype=torch.float64, device=device)
        self._lower = torch.tensor(named.body_pos["finger"][:2] + named.geom_pos["finger"][:2], dtype=torch.float64,
                                   device=device)
        self._radii = float(bridge.task._target_size + named.geom_size["finger", 0])  # the task's own size
        self._targets = torch.zeros(num_envs, 2, dtype=torch.float64, device=device)

    def begin_episodes(self, rows: np.ndarray, rngs: list[np.random.Generator]) -> None:
        """A new target for each of ``rows``."""
        for row in rows:
            angle = rngs[row].uniform(0, 2 * np.pi)
            radius = rngs[row].uniform(*self.TARGET_RADIUS)
            self._targets[row] = torch.tensor([radius * np.sin(angle), radius * np.cos(angle)], dtype=torch.float64)

    @property
    def targets(self) -> torch.Tensor:
        """Each env's target position (x, y), ``[num_envs, 2]`` (a copy)."""
        return self._targets.clone()

    def _finger(self, states: torch.Tensor) -> torch.Tensor:
        def turn(angle: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
            c, s = torch.cos(angle).unsqueeze(-1), torch.sin(angle).unsqueeze(-1)
            return torch.cat([c * local[0] - s * local[1], s * local[0] + c * local[1]], -1)

        shoulder, wrist = states[:, 0], states[:, 0] + states[:, 1]
        return self._base + turn(shoulder, self._upper) + turn(wrist, self._lower)

    def _to_target(self, states: torch.Tensor, rows: np.ndarray | None) -> torch.Tensor:
        targets = self._targets if rows is None else self._targets[torch.as_tensor(rows, device=self._targets.device)]
        return targets - self._finger(states)

    def observations(self, states: torch.Tensor, rows: np.ndarray | None = None) -> OrderedDict[str, np.ndarray]:
        """``position`` = qpos; ``to_target`` = target minus finger (x, y); ``velocity`` = qvel."""
        return OrderedDict(position=to_host(states[:, :2], copy=True), to_target=to_host(self._to_target(states, rows)),
                           velocity=to_host(states[:, 2:], copy=True))

    def rewards(self, states: torch.Tensor, rows: np.ndarray | None = None) -> np.ndarray:
        """1 while the finger touches the target (distance within the two radii)."""
        distance = torch.linalg.vector_norm(self._to_target(states, rows), dim=-1)
        return to_host(tolerance(distance, (0.0, self._radii)))
