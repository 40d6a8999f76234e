"""The real environment a NeuralSim id mirrors: made, wrapped alike for agents, scoring policies."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
from gymnasium import spaces
from gymnasium.wrappers import FlattenObservation
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from neural_sim.checkpoints import read_config, weights_fingerprint
from neural_sim.envs.ids import NAMESPACE, mirrored_id
from neural_sim.errors import NeuralSimError, UnknownNameError
from neural_sim.hub import resolve_checkpoint
from neural_sim.pipeline.collect import AgentPolicy


def real_env_id(env_id: str) -> str:
    """The real env a ``NeuralSim/...`` id stands in for (``NeuralSim/Reacher-v0`` ->
    ``dm_control/reacher-easy-v0``; ``NeuralSim/HalfCheetah-v5`` -> ``HalfCheetah-v5``).

    :raises UnknownNameError: for an id that is not a registered NeuralSim id.
    """
    folder, task = _checkpoint_and_task(env_id)
    return mirrored_id(read_config(folder).robot, task)


def checkpoint_fingerprint(env_id: str, checkpoint: str | None = None, density: bool = True,
                           episode_length: bool = True) -> str:
    """:func:`~neural_sim.checkpoints.weights_fingerprint` of the checkpoint behind a
    ``NeuralSim/...`` id (or of ``checkpoint``, one given in its place): results record it,
    so a figure can be traced to the weights it was measured with (``density``: whether the
    run used the density penalty, and so the density model; ``episode_length``: whether it
    used the id's default episode length).

    :raises UnknownNameError: for an id that is not a registered NeuralSim id.
    """
    folder = _checkpoint_and_task(env_id)[0] if checkpoint is None else resolve_checkpoint(checkpoint)
    return weights_fingerprint(folder, density, episode_length)


def _checkpoint_and_task(env_id: str) -> tuple[Path, str]:
    # The shipped ids are registered: importing any neural_sim module imports the package first.
    name = env_id.split(":", 1)[-1]
    if not name.startswith(f"{NAMESPACE}/") or name not in gym.registry:
        known = sorted(i for i in gym.registry if i.startswith(f"{NAMESPACE}/"))
        raise UnknownNameError(f"{env_id!r} is not a registered NeuralSim env id; known: {known}")
    kwargs = gym.spec(name).kwargs
    return resolve_checkpoint(kwargs["checkpoint"], kwargs.get("revision")), kwargs["task"]


def make_real_env(env_id: str) -> gym.Env[Any, Any]:
    """``gym.make`` of a real env id (shimmy's dm_control ids registered first)."""
    if env_id.startswith("dm_control/"):
        import shimmy  # noqa: F401  (registers the dm_control/... ids)
    return gym.make(env_id)


def agent_env(env: gym.Env[Any, Any]) -> gym.Env[Any, Any]:
    """``env`` as an SB3 agent can take it.

    SB3's dict policies cannot take 0-d Boxes (walker's ``height``, in shimmy's spaces and
    so in ours), so a dict observation holding one is flattened into one Box, the README's
    recipe for walker; other envs are returned as they are. The NeuralSim env, the real env
    and the real evaluation env all go through here, so every agent sees the same spaces.
    """
    space = env.observation_space
    if isinstance(space, spaces.Dict) and any(sub.shape == () for sub in space.spaces.values()):
        return FlattenObservation(env)
    return env


def load_policy(path: str | Path, observation_space: spaces.Space[Any],
                deterministic: bool = False) -> Callable[[Any], Any]:
    """``policy(observation) -> action`` of an SB3 SAC or TQC agent saved by ``neural-sim rl``
    (``<out>/agents/<variant>-seed<S>.zip``), for observations of ``observation_space``
    (flattened first when the agent took them flattened, see :func:`agent_env`).

    :raises NeuralSimError: the file is missing or is not an agent of the accepted algorithms.
    """
    from sb3_contrib import TQC
    from stable_baselines3 import SAC

    path = Path(path)
    if not path.is_file():
        raise NeuralSimError(f"no agent file at {path} (neural-sim rl writes <out>/agents/<variant>-seed<S>.zip)")
    errors = []
    for cls in (SAC, TQC):
        try:
            agent = cls.load(path, device="cpu")
            break
        except Exception as error:  # SB3 raises various types for another algorithm's file
            errors.append(f"{cls.__name__}: {error}")
    else:
        raise NeuralSimError(f"{path} is not a SAC or TQC agent saved by SB3 ({'; '.join(errors)})")
    flatten = isinstance(observation_space, spaces.Dict) and not isinstance(agent.observation_space, spaces.Dict)

    def policy(observation: Any) -> Any:
        if flatten:
            observation = spaces.flatten(observation_space, observation)
        return agent.predict(observation, deterministic=deterministic)[0]

    return policy


def collection_agent(path: str | Path, observation_space: spaces.Space[Any]) -> AgentPolicy:
    """An agent saved by ``neural-sim rl`` as a data collector (its stochastic policy), with
    the fingerprint and the training command (from the run's ``results.json``) that the
    data's provenance records."""
    import hashlib
    import json

    path = Path(path)
    act = load_policy(path, observation_space, deterministic=False)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    results = path.parent.parent / "results.json"
    command = ""
    if results.is_file():
        recorded = json.loads(results.read_text()).get("command", "")
        seed = path.stem.rsplit("seed", 1)[-1]
        command = f"{recorded} (its seed {seed})" if recorded else ""
    return AgentPolicy(act, str(path), sha, command)


class RealEnvEvaluation(BaseCallback):
    """Every ``every`` agent steps (and at the end), score the deterministic policy over
    ``episodes`` full-length episodes of the real env ``env_id``.

    Each evaluation resets from the same seeds, so two agents are scored on the same
    initial states. Results accumulate in :attr:`records` as
    ``{"steps", "mean", "std", "returns", "out_of_domain_truncations"}``, the last counting
    the training episodes so far that a NeuralSim env ended for leaving its data.

    :param on_evaluation: called with each new record (progress lines, saving).
    """

    def __init__(
        self,
        env_id: str,
        every: int,
        episodes: int = 10,
        seed: int = 0,
        on_evaluation: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        super().__init__()
        if every < 1 or episodes < 1:
            raise ValueError(f"every and episodes must be positive, got every={every}, episodes={episodes}")
        self.env_id, self.every, self.episodes, self.seed = env_id, every, episodes, seed
        self.on_evaluation = on_evaluation
        self.records: list[dict[str, Any]] = []
        self.out_of_domain = 0
        self._env: DummyVecEnv | None = None

    def _init_callback(self) -> None:
        self._env = DummyVecEnv([lambda: Monitor(agent_env(make_real_env(self.env_id)))])

    def _on_step(self) -> bool:
        self.out_of_domain += sum(bool(info.get("out_of_domain")) for info in self.locals.get("infos", ()))
        if self.num_timesteps % self.every == 0:
            self.evaluate()
        return True

    def _on_training_end(self) -> None:
        if not self.records or self.records[-1]["steps"] != self.num_timesteps:
            self.evaluate()
        if self._env is not None:
            self._env.close()

    def evaluate(self) -> dict[str, Any]:
        """Score the current policy now and record it."""
        assert self._env is not None and isinstance(self.model, BaseAlgorithm)
        record = {"steps": int(self.num_timesteps), **score_policy(self.model, self._env, self.episodes, self.seed),
                  "out_of_domain_truncations": self.out_of_domain}
        self.records.append(record)
        if self.on_evaluation is not None:
            self.on_evaluation(record)
        return record


def score_policy(model: BaseAlgorithm, env: DummyVecEnv, episodes: int, seed: int) -> dict[str, Any]:
    """Deterministic returns of ``model`` over ``episodes`` episodes of ``env`` from ``seed``."""
    env.seed(seed)
    returns, _ = evaluate_policy(model, env, n_eval_episodes=episodes, deterministic=True,
                                 return_episode_rewards=True, warn=False)
    values = [float(r) for r in cast("list[float]", returns)]  # return_episode_rewards=True: one per episode
    mean = sum(values) / len(values)
    return {"mean": mean, "std": (sum((r - mean) ** 2 for r in values) / len(values)) ** 0.5, "returns": values}
