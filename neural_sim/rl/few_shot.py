"""The MoSim paper's few-shot loop (section 3.4), as a Stable-Baselines3 callback.

An agent trains in a NeuralSim env as usual. Every ``every`` agent steps the callback
runs the current policy for ``real_steps`` steps in the real physics (the env's
:meth:`~neural_sim.envs.single.NeuralSimEnv.physics_twin`), records the physics states,
adds them to the env's reset buffer (so model episodes start where the agent now goes),
and fine-tunes the env's model on every real transition gathered so far. The agent
itself is untouched: any off-the-shelf algorithm becomes model-based this way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from neural_sim.envs.single import NeuralSimEnv
from neural_sim.errors import NeuralSimError
from neural_sim.pipeline.train import fine_tune


class FewShotLoop(BaseCallback):
    """Collect real steps with the current policy, fine-tune the model on them, repeat.

    :param every: agent steps (in the learned simulator) between real collections.
    :param real_steps: real-env steps per collection.
    :param finetune_iterations: Adam steps of fine-tuning after each collection.
    :param learning_rate: fine-tuning learning rate.
    :param batch_size: fine-tuning batch size.
    :param seed: seeds the real env's resets and the fine-tuning batches.
    :param on_collection: called with each record (``steps``, ``real_steps_total``,
        ``real_return_last_episode``, ``loss_before``, ``loss_after``).
    """

    def __init__(
        self,
        every: int,
        real_steps: int,
        finetune_iterations: int = 200,
        learning_rate: float = 1e-4,
        batch_size: int = 256,
        seed: int = 0,
        on_collection: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        super().__init__()
        if every < 1 or real_steps < 1 or finetune_iterations < 1:
            raise ValueError(
                f"every, real_steps and finetune_iterations must be positive, got {every}, {real_steps}, "
                f"{finetune_iterations}"
            )
        self.every, self.real_steps, self.iterations = every, real_steps, finetune_iterations
        self.learning_rate, self.batch_size, self.seed = learning_rate, batch_size, seed
        self.on_collection = on_collection
        self.records: list[dict[str, Any]] = []
        self.transitions: dict[str, list[np.ndarray]] = {"starts": [], "actions": [], "targets": []}
        self._returns: list[float] = []

    def _init_callback(self) -> None:
        envs = self.training_env.get_attr("unwrapped")
        if not all(isinstance(env, NeuralSimEnv) and env.backend == "neural" for env in envs):
            raise NeuralSimError("FewShotLoop needs an agent training in NeuralSim envs (backend 'neural')")
        self.model_envs: list[NeuralSimEnv] = envs
        self.real = envs[0].physics_twin()
        self._episode_steps = envs[0].config.robot.episode_steps
        self._start_real_episode(self.seed)

    def _start_real_episode(self, seed: int | None = None) -> None:
        self._obs, info = self.real.reset(seed=seed)
        self._state = info["state"]
        self._episode_return, self._episode_length = 0.0, 0

    def _on_step(self) -> bool:
        if self.num_timesteps % self.every == 0:
            self.collect_and_fine_tune()
        return True

    def _on_training_end(self) -> None:
        self.real.close()

    @property
    def real_steps_total(self) -> int:
        """Real-env steps taken so far."""
        return sum(len(batch) for batch in self.transitions["starts"])

    def collect_and_fine_tune(self) -> dict[str, Any]:
        """One round: ``real_steps`` real steps with the current (stochastic) policy, their
        states into every model env's reset buffer, then fine-tuning on all real data."""
        starts, actions, targets = [], [], []
        for _ in range(self.real_steps):
            action, _ = self.model.predict(self._obs, deterministic=False)
            obs, reward, terminated, truncated, info = self.real.step(action)
            starts.append(self._state)
            actions.append(np.asarray(action, dtype=np.float64))
            targets.append(info["state"])
            self._obs, self._state = obs, info["state"]
            self._episode_return += float(reward)
            self._episode_length += 1
            if terminated or truncated or self._episode_length >= self._episode_steps:
                self._returns.append(self._episode_return)
                self._start_real_episode()
        for key, rows in (("starts", starts), ("actions", actions), ("targets", targets)):
            self.transitions[key].append(np.stack(rows))
        for env in self.model_envs:
            env.add_reset_states(np.stack(starts))
        simulator = self.model_envs[0].simulator
        losses = fine_tune(simulator, *(np.concatenate(self.transitions[k]) for k in ("starts", "actions", "targets")),
                           iterations=self.iterations, learning_rate=self.learning_rate,
                           batch_size=self.batch_size, seed=self.seed + len(self.records))
        weights = simulator.field.state_dict()
        for env in self.model_envs[1:]:
            if env.simulator is not simulator:
                env.simulator.field.load_state_dict(weights)
        record = {"steps": int(self.num_timesteps), "real_steps_total": self.real_steps_total,
                  "real_return_last_episode": self._returns[-1] if self._returns else None, **losses}
        self.records.append(record)
        if self.on_collection is not None:
            self.on_collection(record)
        return record
