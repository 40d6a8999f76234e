"""What every robot source provides: its dimensions and a task evaluated on given states."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from gymnasium import spaces

from neural_sim.model.config import StateLayout

if TYPE_CHECKING:  # importing the package must not load MuJoCo
    from neural_sim.robots.activation import ActuatorActivation


@dataclass(frozen=True)
class RobotInfo:
    """Which robot and tasks a checkpoint models (its ``config.json`` ``robot`` section).

    :param name: neural-sim's robot name (``"acrobot"``).
    :param source: where robot and tasks come from (``"dm_control"``, ``"gymnasium"``,
        ``"mjcf"``).
    :param domain: the source's name for the robot (dm_control domain, Gymnasium env id,
        or the MJCF file's name inside the checkpoint folder).
    :param tasks: every stock task of the robot.
    :param default_task: the task behind the short env id (``NeuralSim/Acrobot-v0``).
    :param episode_steps: control steps in a stock episode.
    """

    name: str
    source: str
    domain: str
    tasks: tuple[str, ...]
    default_task: str
    episode_steps: int


@dataclass(frozen=True)
class RobotSpec:
    """A robot as its stock simulator defines it: identity plus state layout.

    :param files: files a checkpoint of the robot must carry (an MJCF robot's XML).
    """

    info: RobotInfo
    layout: StateLayout
    files: tuple[Path, ...] = ()


class TaskBridge(Protocol):
    """A stock task evaluated on physics states that something else produced.

    After :meth:`reset_to` or :meth:`transition` (a learned step) or :meth:`step_physics` (a
    real step: the oracle backend and data collection), read the task's own observation,
    reward and termination of the step with :meth:`observation`, :meth:`reward`,
    :meth:`termination` and :meth:`step_info`.
    """

    observation_space: spaces.Space[Any]
    action_space: spaces.Box
    task_name: str
    nq: int
    nv: int
    dt: float
    #: Whether the task can end an episode (terminate) in some states.
    episodes_can_end: bool
    #: Number of actuator activations (MuJoCo ``na``): state outside ``(qpos, qvel)`` that
    #: :meth:`transition` advances exactly from the control (zero at an episode start).
    na: int
    #: MuJoCo's rule advancing those activations over a control step (``None`` when ``na == 0``).
    activation: ActuatorActivation | None

    @property
    def activations(self) -> np.ndarray:
        """The current actuator activations ``[na]`` (a copy; settable, e.g. to switch envs)."""
        ...

    @activations.setter
    def activations(self, value: np.ndarray) -> None: ...

    def set_state(self, state: np.ndarray) -> None:
        """Write ``[qpos, qvel]`` into the physics and recompute derived quantities."""
        ...

    def reset_to(self, state: np.ndarray) -> None:
        """Start an episode at ``state`` (fresh simulator data, then :meth:`set_state`)."""
        ...

    def transition(self, previous: np.ndarray, action: np.ndarray, state: np.ndarray,
                   activations: np.ndarray | None = None) -> None:
        """A learned step took the robot from ``previous`` to ``state`` under ``action``: leave
        the physics as a real step would (control applied, actuator activations advanced, or
        set to ``activations`` when the caller carries them, ``state`` written, derived
        quantities recomputed) and let the task score the step, including reward terms that
        depend on ``previous`` or ``action``."""
        ...

    def get_state(self) -> np.ndarray:
        """The physics' current ``[qpos, qvel]`` (a copy)."""
        ...

    def reset_random(self) -> np.ndarray:
        """Start a stock episode (the task's own random initial state); return its state."""
        ...

    def step_physics(self, action: np.ndarray) -> None:
        """Advance the real physics one control step under ``action``."""
        ...

    def actuator_dofs(self) -> np.ndarray:
        """The velocity index each actuator drives, ``[nu]``."""
        ...

    def observation(self) -> Any:
        """The task's observation of the current physics state."""
        ...

    def reward(self) -> float:
        """The task's reward for the current physics state."""
        ...

    def termination(self) -> tuple[bool, bool]:
        """``(terminated, truncated)`` as the stock task decides for the current state."""
        ...

    def step_info(self) -> dict[str, Any]:
        """Extra per-step information the task itself reports (empty for dm_control)."""
        ...

    def render(self, width: int, height: int, camera_id: int) -> np.ndarray:
        """An RGB image of the current physics state."""
        ...

    def seed(self, seed: int | None) -> None:
        """Reseed the task's own randomness (used by :meth:`reset_random`)."""
        ...

    def close(self) -> None:
        """Free the physics."""
        ...
