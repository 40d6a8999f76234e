"""``neural-sim benchmark-task``: how well a checkpoint predicts a task's rewards where
episodes really go, and the episode length that follows.

The random-action benchmark (:mod:`.benchmark`) scores states from step 100 of long
random sequences: a walker lying on the floor. An agent instead starts where the stock task
starts and goes where its policy takes it. Here, episodes start from the task's own initial
states in real MuJoCo and run a policy there (seeded Poisson random actions by default, or
any ``policy(observation) -> action``, e.g. a trained agent); the same actions are then
replayed open loop in the learned simulator from the same initial state, and the task's
reward is computed on both state sequences by the task itself.

With a policy, the policy also runs **closed loop** in the learned simulator from the same
initial states, acting on the model's own observations: this is how an agent trained there
meets the model. Open loop, one unstable task (a walker balancing) drifts apart even in
real physics from a slightly different state; closed loop, the policy corrects it in both.

**Episode-length rule.** The default episode length of a checkpoint's environments is the
largest ``H`` (up to the stock episode) such that, for every ``h <= H``, the model's return
over the first ``h`` steps differs from the real one by at most :data:`REWARD_TOLERANCE` of
the per-step reward range, per step. With a policy, the closed-loop returns are compared
in the mean over episodes, ``|mean_e sum_{t<h} (r_model - r_real)| / h <= 0.1 (r_max -
r_min)`` (an agent optimises the expected return); with random actions, the open-loop
ones per episode, ``mean_e |sum_{t<h} (r_model - r_real)| / h``. A return that agrees is
what an agent learns from; the state error alone (the trusted horizon) says nothing about
how much of it matters to the task.

Where the real task terminates (a Gymnasium Ant that flips), episodes end at different
steps: errors are scored up to the median episode length, each step ``h`` over the
episodes still running at ``h``, so one early fall does not cap the rule for the rest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neural_sim.checkpoints import CheckpointConfig, load_simulator, read_config, write_config
from neural_sim.errors import NeuralSimError
from neural_sim.model.activations import zero_activations
from neural_sim.pipeline.card import write_card
from neural_sim.pipeline.collect import poisson_actions
from neural_sim.robots import make_task_bridge

#: Tolerated return error per step, as a fraction of the real per-step reward range.
REWARD_TOLERANCE = 0.1

Policy = Callable[[Any], np.ndarray]


@dataclass
class TaskFidelity:
    """Per-step errors of the model's rollouts along real episodes of a task.

    Means at step ``h`` are over the episodes still running at ``h``; ``H`` is the median
    episode length.

    :param reward_error: ``[H]`` mean over episodes of ``|r_model - r_real|`` at each step.
    :param return_error: ``[H]`` mean over episodes of ``|sum_{t<h} (r_model - r_real)| / h``.
    :param state_mse: ``[H]`` mean squared state error at each step, raw units, over
        episodes whose model rollout stayed finite.
    :param diverged: episodes whose model rollout became non-finite.
    :param real_return: ``[E]`` real returns over the ``H`` steps (or the episode's end).
    :param model_return: ``[E]`` the model's returns over the same actions.
    :param reward_range: ``r_max - r_min`` of the real per-step rewards (1.0 if constant).
    :param episode_length: the rule's episode length (see the module docstring).
    :param closed_loop_return_error: ``[H]`` with a policy: ``|mean_e sum_{t<h} (r_model -
        r_real)| / h`` with the policy run closed loop in the model (else ``None``).
    :param closed_loop_return: ``[E]`` with a policy: its returns closed loop in the model.
    :param real_episode_steps: ``[E]`` steps each real episode ran before the task ended it
        (or the requested steps).
    """

    reward_error: np.ndarray
    return_error: np.ndarray
    state_mse: np.ndarray
    diverged: int
    real_return: np.ndarray
    model_return: np.ndarray
    reward_range: float
    episode_length: int
    closed_loop_return_error: np.ndarray | None = None
    closed_loop_return: np.ndarray | None = None
    real_episode_steps: np.ndarray | None = None

    def summary(self, horizons: tuple[int, ...] = (10, 25, 50, 100, 250, 1000)) -> dict[str, Any]:
        """JSON-ready figures: per-horizon errors, returns and the episode length."""
        steps = len(self.return_error)
        at = [h for h in horizons if h <= steps]
        closed = {}
        if self.closed_loop_return_error is not None and self.closed_loop_return is not None:
            closed = {"closed_loop_return_error_per_step": {str(h): float(self.closed_loop_return_error[h - 1])
                                                            for h in at},
                      "closed_loop_return_mean": float(self.closed_loop_return.mean())}
        return {
            "episodes": len(self.real_return),
            "evaluated_steps": steps,
            **({} if self.real_episode_steps is None else
               {"real_episode_steps": {"min": int(self.real_episode_steps.min()),
                                       "median": float(np.median(self.real_episode_steps)),
                                       "max": int(self.real_episode_steps.max())}}),
            "reward_range": self.reward_range,
            "tolerance": REWARD_TOLERANCE,
            "episode_length": self.episode_length,
            "diverged": self.diverged,
            "return_error_per_step": {str(h): float(self.return_error[h - 1]) for h in at},
            "reward_error": {str(h): float(self.reward_error[h - 1]) for h in at},
            "state_mse": {str(h): float(self.state_mse[h - 1]) for h in at},
            "real_return_mean": float(self.real_return.mean()),
            "model_return_mean": float(self.model_return.mean()),
            **closed,
        }


def episode_length_rule(return_error: np.ndarray, reward_range: float,
                        tolerance: float = REWARD_TOLERANCE) -> int:
    """The largest ``H`` with ``return_error[h - 1] <= tolerance * reward_range`` for all ``h <= H``."""
    above = np.nonzero(~(return_error <= tolerance * reward_range))[0]  # NaN counts as above
    return int(above[0]) if len(above) else len(return_error)


def _finite_mean(values: np.ndarray) -> np.ndarray:
    """Column means over the finite entries (NaN where there are none)."""
    finite = np.isfinite(values)
    counts = finite.sum(0)
    sums = np.where(finite, values, 0.0).sum(0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


@torch.no_grad()
def task_fidelity(
    checkpoint: str | Path,
    task: str | None = None,
    episodes: int = 20,
    steps: int | None = None,
    seed: int = 1,
    policy: Policy | None = None,
) -> TaskFidelity:
    """Score a checkpoint's rewards along real episodes of ``task``.

    :param checkpoint: a checkpoint folder.
    :param task: stock task (default: the checkpoint's default task).
    :param episodes: real episodes, each from the task's own random initial state.
    :param steps: steps per episode (default: the stock episode length); an episode the
        real task terminates earlier is cut there, and so is its model rollout.
    :param seed: seeds the initial states and the random actions (use one training never used).
    :param policy: ``policy(observation) -> action`` acting in the real episode (the real
        task's observation); default: Poisson random actions, the training data's protocol.
    :raises NeuralSimError: ``episodes`` or ``steps`` below 1, or an unknown task.
    """
    folder = Path(checkpoint)
    config = read_config(folder)
    robot = config.robot
    task = task or robot.default_task
    steps = robot.episode_steps if steps is None else steps
    if episodes < 1 or steps < 1:
        raise NeuralSimError(f"episodes and steps must be >= 1, got {episodes} and {steps}")
    if task not in robot.tasks:
        raise NeuralSimError(f"unknown task {task!r} for robot {robot.name!r}; known: {list(robot.tasks)}")
    simulator = load_simulator(folder, config)
    real = make_task_bridge(robot, task, seed, folder=folder if robot.source == "mjcf" else None)
    model = make_task_bridge(robot, task, seed, folder=folder if robot.source == "mjcf" else None)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)  # a stochastic policy (SB3's) samples from torch's generator
    low, high = real.action_space.low, real.action_space.high
    real_rewards = np.full((episodes, steps), np.nan)
    model_rewards = np.full((episodes, steps), np.nan)
    closed_rewards = np.full((episodes, steps), np.nan)
    state_errors = np.full((episodes, steps), np.nan)
    lengths = np.zeros(episodes, dtype=int)
    diverged = 0
    for e in range(episodes):
        start = real.reset_random()
        random_actions = poisson_actions(rng, steps, low, high)
        observation = real.observation()
        actions, real_states = [], []
        for t in range(steps):
            action = random_actions[t] if policy is None else np.asarray(policy(observation), dtype=np.float64)
            real.step_physics(action)
            actions.append(action)
            real_states.append(real.get_state())
            real_rewards[e, t] = real.reward()
            observation = real.observation()
            if real.termination()[0]:
                break
        lengths[e] = len(actions)
        model.reset_to(start)
        state = start
        episode_actions = torch.as_tensor(np.stack(actions), dtype=torch.float32, device=simulator.device)[None]
        # Episodes start with zero actuator activations (as MuJoCo's reset), advanced by the actions.
        inputs = simulator.rollout_inputs(episode_actions, zero_activations(simulator.config.layout, 1,
                                                                            simulator.device))
        predicted = simulator.fast_rollout(torch.as_tensor(start, dtype=torch.float32, device=simulator.device)[None],
                                           inputs)[0].double().cpu().numpy()
        finite = np.isfinite(predicted).all(axis=1)
        if not finite.all():
            diverged += 1
        for t, action in enumerate(actions):
            if not finite[t]:
                break  # the rest stays NaN: scored as a full reward range of error per step
            model.transition(state, action, predicted[t])
            model_rewards[e, t] = model.reward()
            state_errors[e, t] = float(np.mean((predicted[t] - real_states[t]) ** 2))
            state = predicted[t]
        if policy is not None:
            closed_rewards[e, : lengths[e]] = _closed_loop_rewards(simulator, model, policy, start, int(lengths[e]))
    real.close()
    model.close()
    # Scored up to the median episode length, each horizon over the episodes still running
    # there: one agent that falls early (Ant-v5 flipping) must not cap every other episode.
    horizon = max(1, int(np.median(lengths)))
    alive = np.arange(horizon)[None, :] < lengths[:, None]

    def over_running(values: np.ndarray) -> np.ndarray:
        """Column means over the episodes still running at each step."""
        return _finite_mean(np.where(alive, values, np.nan))

    real_rewards, model_rewards = real_rewards[:, :horizon], model_rewards[:, :horizon]
    seen = real_rewards[alive]
    reward_range = float(seen.max() - seen.min()) if seen.size and seen.max() > seen.min() else 1.0
    model_rewards_scored = np.where(np.isfinite(model_rewards), model_rewards, real_rewards + reward_range)
    difference = np.where(alive, model_rewards_scored - real_rewards, 0.0)
    per_step = np.arange(1, horizon + 1)
    return_error = over_running(np.abs(np.cumsum(difference, axis=1))) / per_step
    closed_error = closed_return = None
    if policy is not None:
        closed = closed_rewards[:, :horizon]
        closed = np.where(np.isfinite(closed), closed, real_rewards + reward_range)
        closed_difference = np.where(alive, closed - real_rewards, 0.0)
        closed_error = np.abs(over_running(np.cumsum(closed_difference, axis=1))) / per_step
        closed_return = np.where(alive, closed, 0.0).sum(1)
    return TaskFidelity(
        reward_error=over_running(np.abs(difference)),
        return_error=return_error,
        state_mse=_finite_mean(state_errors[:, :horizon]),
        diverged=diverged,
        real_return=np.where(alive, real_rewards, 0.0).sum(1),
        model_return=np.where(alive, model_rewards_scored, 0.0).sum(1),
        reward_range=reward_range,
        episode_length=episode_length_rule(closed_error if closed_error is not None else return_error, reward_range),
        closed_loop_return_error=closed_error,
        closed_loop_return=closed_return,
        real_episode_steps=lengths,
    )


def _closed_loop_rewards(simulator: Any, model: Any, policy: Policy, start: np.ndarray, steps: int) -> np.ndarray:
    """The task's rewards with ``policy`` acting on the model's own observations from ``start``
    (NaN from the first non-finite prediction on)."""
    rewards = np.full(steps, np.nan)
    model.reset_to(start)
    state = start
    as_input = lambda x: torch.as_tensor(x, dtype=torch.float32, device=simulator.device)[None]  # noqa: E731
    for t in range(steps):
        action = np.asarray(policy(model.observation()), dtype=np.float64)
        # The model's input: the action, then the activations the bridge has carried (if it takes them).
        step_input = np.concatenate([action, model.activations]) if simulator.config.layout.na else action
        next_state = simulator.fast_predict(as_input(state), as_input(step_input))[0].double().cpu().numpy()
        if not np.isfinite(next_state).all():
            break
        model.transition(state, action, next_state)
        rewards[t] = model.reward()
        state = next_state
    return rewards


def write_episode_length(folder: str | Path, fidelity: TaskFidelity, task: str, policy: str,
                         command: str) -> CheckpointConfig:
    """Make the rule's episode length the checkpoint's default (its ``episode_length``
    record, read by env registration) and regenerate its model card.

    :param task: the task the episodes ran.
    :param policy: what drove them, in words (it goes into the card).
    :param command: the command that measured it.
    """
    folder = Path(folder)
    old = read_config(folder)
    record = {**fidelity.summary(), "steps": fidelity.episode_length, "task": task, "policy": policy,
              "command": command}
    config = dataclasses.replace(old, episode_length=record)
    write_config(folder, config)
    write_card(folder, config)
    return config
