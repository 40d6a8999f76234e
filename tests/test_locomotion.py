"""Locomotion: contact features from closed-form kinematics, rewards scored where episodes
go (the episode-length rule), and walker agents in the RL harness."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np
import pytest
import torch
from dm_control import suite

from neural_sim.checkpoints import read_config, weights_fingerprint
from neural_sim.cli import main
from neural_sim.envs.registration import register_checkpoint
from neural_sim.errors import NeuralSimError
from neural_sim.hub import resolve_checkpoint
from neural_sim.model.config import IntegratorConfig, ModelConfig, NetworkConfig, SimulatorConfig
from neural_sim.model.kinematics import ContactHeights, ContactTreeHeights
from neural_sim.model.simulator import Simulator
from neural_sim.pipeline.collect import AgentPolicy, Dataset, collect, recollect_training_data
from neural_sim.pipeline.recipes import RECIPES_DIR, load_recipe
from neural_sim.pipeline.task_fidelity import episode_length_rule, task_fidelity, write_episode_length
from neural_sim.pipeline.train import TrainConfig, compute_normalisation, train
from neural_sim.rl import make_agent, zero_shot
from neural_sim.rl.real_env import agent_env, load_policy, make_real_env
from neural_sim.rl.runs import RESULTS_FILE
from neural_sim.robots import robot_spec
from neural_sim.robots.mujoco_model import _contact_points, contact_kinematics

SMALL = NetworkConfig(1, 16)
QUIET = {"progress": False, "log": lambda _: None}


def _mujoco_heights(model: mujoco.MjModel, data: mujoco.MjData, q: np.ndarray) -> np.ndarray:
    data.qpos[:] = q
    mujoco.mj_kinematics(model, data)
    return np.array([(data.xpos[body] + data.xmat[body].reshape(3, 3) @ point)[2] - lowered
                     for _, body, point, lowered in _contact_points(model)])


@pytest.mark.parametrize(("domain", "task"), [("walker", "walk"), ("hopper", "hop"), ("cheetah", "run")])
def test_contact_heights_and_their_rates_match_mujoco(domain: str, task: str) -> None:
    env = suite.load(domain, task)
    model = env.physics.model.ptr
    data = mujoco.MjData(model)
    kinematics = contact_kinematics(model)
    assert kinematics is not None and len(kinematics.points) >= 10
    heights = ContactHeights(kinematics).double()
    rng = np.random.default_rng(0)
    for _ in range(20):
        q, v = rng.normal(size=model.nq), rng.normal(size=model.nv)
        got = heights(torch.from_numpy(q), torch.from_numpy(v)).numpy()
        want = _mujoco_heights(model, data, q)
        rate = (_mujoco_heights(model, data, q + 1e-7 * v) - want) / 1e-7
        points = len(want)
        np.testing.assert_allclose(got[:points], want, atol=1e-6)
        np.testing.assert_allclose(got[points:], rate, atol=1e-5)
    env.close()


def test_robots_that_are_not_planar_have_no_closed_form_contact_kinematics() -> None:
    assert robot_spec("reacher").layout.contact_kinematics is None  # its hinges turn about z
    assert robot_spec("walker").layout.contact_kinematics is not None
    assert robot_spec("walker").layout.contact_tree is None  # the closed form serves planar robots
    assert robot_spec("quadruped").layout.contact_tree is not None


def test_contact_features_are_refused_for_a_robot_that_cannot_touch_a_floor() -> None:
    layout = robot_spec("InvertedPendulum-v5").layout
    assert layout.contact_kinematics is None and layout.contact_tree is None
    data = collect("InvertedPendulum-v5", sequences=2, steps=5, seed=0, command="pytest")
    with pytest.raises(NeuralSimError, match=r"contact features need a robot whose bodies can touch a floor.*"
                                             r"'InvertedPendulum-v5'"):
        compute_normalisation(data, robot_spec("InvertedPendulum-v5"), contact_features=True)


def _mujoco_points(model: mujoco.MjModel, data: mujoco.MjData, q: np.ndarray,
                   v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Heights and vertical velocities of the contact points, from MuJoCo's own kinematics
    and point Jacobians."""
    data.qpos[:], data.qvel[:] = q, v
    mujoco.mj_forward(model, data)
    heights, speeds = [], []
    jacobian = np.zeros((3, model.nv))
    for _, body, point, lowered in _contact_points(model):
        world = data.xpos[body] + data.xmat[body].reshape(3, 3) @ point
        mujoco.mj_jac(model, data, jacobian, None, world, body)
        heights.append(world[2] - lowered)
        speeds.append((jacobian @ v)[2])
    return np.array(heights), np.array(speeds)


@pytest.mark.parametrize("robot", ["humanoid", "quadruped", "Ant-v5"])
def test_contact_tree_heights_and_their_rates_match_mujoco(robot: str) -> None:
    spec = robot_spec(robot)
    model = (gym.make(robot).unwrapped.model if robot.endswith("-v5")  # type: ignore[attr-defined]
             else suite.load(robot, "walk" if robot == "quadruped" else "stand").physics.model.ptr)
    data = mujoco.MjData(model)
    tree = spec.layout.contact_tree
    assert tree is not None and len(tree.points) == len(_contact_points(model)) >= 20
    heights = ContactTreeHeights(tree).double()
    rng = np.random.default_rng(0)
    for _ in range(10):
        q, v = rng.normal(size=model.nq), rng.normal(size=model.nv)
        q[3:7] *= 1.3 / np.linalg.norm(q[3:7])  # MuJoCo reads q / |q|; so must the features
        got = heights(torch.from_numpy(q), torch.from_numpy(v)).numpy()
        q[3:7] /= 1.3
        want_heights, want_speeds = _mujoco_points(model, data, q, v)
        np.testing.assert_allclose(got[: len(want_heights)], want_heights, atol=1e-6)
        np.testing.assert_allclose(got[len(want_heights):], want_speeds, atol=1e-6)


def test_a_floating_base_checkpoint_with_contact_features_trains_and_steps(tmp_path: Path) -> None:
    data = collect("quadruped", sequences=4, steps=120, seed=0, command="pytest")
    model = ModelConfig(architecture="residual", residual=SMALL, contact_features=True)
    config = TrainConfig(iterations=2, batch_size=16, eval_every=2, eval_horizon=16, seed=0)
    out = train(data, robot_spec("quadruped"), tmp_path / "quadruped", model, config=config, command="pytest",
                **QUIET)
    loaded = read_config(out)
    assert loaded.simulator.layout.contact_tree == robot_spec("quadruped").layout.contact_tree
    assert len(loaded.simulator.normalisation.contact_mean) == 2 * len(loaded.simulator.layout.contact_tree.points)
    env = gym.make("NeuralSim/Quadruped-v0", checkpoint=str(out))
    env.reset(seed=0)
    state = env.step(env.action_space.sample())[4]["state"]
    assert np.isfinite(state).all()
    assert np.linalg.norm(state[3:7]) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("architecture", ["residual", "mosim"])
def test_a_model_with_contact_features_steps_alike_on_every_path(architecture: str) -> None:
    spec = robot_spec("walker")
    data = collect("walker", sequences=2, steps=20, seed=0, command="pytest")
    normalisation = compute_normalisation(data, spec, contact_features=True)
    assert len(normalisation.contact_mean) == 2 * len(spec.layout.contact_kinematics.points)
    torch.manual_seed(0)
    model = ModelConfig(architecture=architecture, position_encoder=SMALL, state_encoder=SMALL,
                        action_encoder=SMALL, correctors=(SMALL,), residual=SMALL, contact_features=True)
    simulator = Simulator(SimulatorConfig(spec.layout, model, IntegratorConfig(), normalisation))
    states = torch.as_tensor(data.states[:, 0], dtype=torch.float32)
    actions = torch.as_tensor(data.actions[:, 0], dtype=torch.float32)
    torch.testing.assert_close(simulator.fast_predict(states, actions), simulator.predict(states, actions).detach(),
                               atol=1e-5, rtol=1e-5)
    # The networks see the standardised heights and rates after the positions and velocities.
    features = simulator.field.features
    q, v = states[:, :9], states[:, 9:]
    seen = features.state(q, v)[:, features.position_size + features.velocity_size:]
    heights = ContactHeights(spec.layout.contact_kinematics)(q, v)
    torch.testing.assert_close(seen, (heights - features.contact_mean) / features.contact_std)


def test_a_checkpoint_with_contact_features_saves_loads_and_fine_tunes(tmp_path: Path) -> None:
    data = collect("walker", sequences=4, steps=120, seed=3, command="pytest")
    model = ModelConfig(architecture="residual", residual=SMALL, contact_features=True)
    config = TrainConfig(iterations=4, batch_size=32, eval_every=2, eval_horizon=16, seed=1)
    out = train(data, robot_spec("walker"), tmp_path / "walker", model, config=config, command="pytest", **QUIET)
    loaded = read_config(out)
    assert loaded.simulator.model.contact_features
    assert loaded.simulator.layout.contact_kinematics == robot_spec("walker").layout.contact_kinematics
    env = gym.make("NeuralSim/Walker-v0", checkpoint=str(out))
    env.reset(seed=0)
    assert np.isfinite(env.step(env.action_space.sample())[4]["state"]).all()
    tuned = train(data, robot_spec("walker"), tmp_path / "tuned", model, config=config, command="pytest",
                  init_from=out, **QUIET)
    assert read_config(tuned).simulator.normalisation == loaded.simulator.normalisation


def test_episode_length_rule_is_the_last_horizon_before_the_first_crossing() -> None:
    errors = np.array([0.01, 0.05, 0.2, 0.05, 0.01])
    assert episode_length_rule(errors, reward_range=1.0) == 2
    assert episode_length_rule(errors, reward_range=10.0) == 5
    assert episode_length_rule(np.array([0.0, np.nan, 0.0]), reward_range=1.0) == 1


def test_task_fidelity_scores_rewards_along_real_episodes_and_sets_the_episode_length(tmp_path: Path) -> None:
    folder = tmp_path / "cartpole"
    shutil.copytree(resolve_checkpoint("cartpole"), folder)
    good = task_fidelity(folder, "balance", episodes=3, steps=60, seed=1)
    assert good.episode_length == 60 and good.diverged == 0
    assert good.return_error.max() < 0.01 and len(good.real_return) == 3
    again = task_fidelity(folder, "balance", episodes=3, steps=60, seed=1)
    np.testing.assert_array_equal(again.model_return, good.model_return)
    # A policy drives the real episodes; a stochastic one samples from torch, seeded too.
    noisy = lambda _observation: torch.rand(1).numpy() * 2 - 1  # noqa: E731
    first = task_fidelity(folder, "balance", episodes=2, steps=20, seed=4, policy=noisy)
    second = task_fidelity(folder, "balance", episodes=2, steps=20, seed=4, policy=noisy)
    np.testing.assert_array_equal(first.real_return, second.real_return)
    np.testing.assert_array_equal(first.closed_loop_return, second.closed_loop_return)
    push = lambda _observation: np.array([1.0])  # noqa: E731
    pushed = task_fidelity(folder, "balance", episodes=2, steps=30, seed=1, policy=push)
    assert not np.allclose(pushed.real_return, good.real_return[:2])
    # With a policy it also acts closed loop in the model, and the rule reads that return.
    assert good.closed_loop_return is None and pushed.closed_loop_return is not None
    assert pushed.closed_loop_return == pytest.approx(pushed.model_return, rel=1e-4)  # it ignores what it sees
    assert pushed.episode_length == episode_length_rule(pushed.closed_loop_return_error, pushed.reward_range)

    before, without_length = weights_fingerprint(folder), weights_fingerprint(folder, episode_length=False)
    config = write_episode_length(folder, good, "balance", "Poisson random actions", "pytest")
    assert config.default_episode_steps == 60
    assert weights_fingerprint(folder) != before  # RL results trained with another truncation say so
    assert weights_fingerprint(folder, episode_length=False) == without_length  # not those that set their own
    assert "stays within 0.1 of the reward range" in (folder / "README.md").read_text()
    ids = register_checkpoint(folder)
    assert gym.spec(ids[0]).max_episode_steps == 60


def test_episodes_the_task_ends_early_are_scored_while_they_run() -> None:
    # InvertedPendulum-v5 terminates when the pole falls: under random actions episodes end
    # at different steps, and the shortest must not cap the horizon of the others.
    fidelity = task_fidelity(resolve_checkpoint("InvertedPendulum-v5"), episodes=5, steps=200, seed=1)
    lengths = fidelity.real_episode_steps
    assert lengths is not None and lengths.min() < lengths.max() < 200
    assert len(fidelity.return_error) == int(np.median(lengths)) > lengths.min()
    assert np.isfinite(fidelity.return_error).all() and np.isfinite(fidelity.reward_error).all()
    assert fidelity.summary()["real_episode_steps"]["min"] == lengths.min()


def test_a_broken_model_gets_a_short_episode(tmp_path: Path) -> None:
    folder = tmp_path / "cartpole"
    shutil.copytree(resolve_checkpoint("cartpole"), folder)
    from safetensors.torch import load_file, save_file

    weights = load_file(folder / "model.safetensors")
    save_file({k: torch.randn_like(v) for k, v in weights.items()}, folder / "model.safetensors")
    broken = task_fidelity(folder, "balance", episodes=3, steps=60, seed=1)
    assert broken.episode_length < 60


def test_benchmark_task_command_prints_and_writes_the_episode_length(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "cartpole"
    shutil.copytree(resolve_checkpoint("cartpole"), folder)
    main(["benchmark-task", str(folder), "--episodes", "2", "--steps", "40", "--json", str(tmp_path / "t.json"),
          "--write"])
    out = capsys.readouterr().out
    assert "episode length by the rule" in out and "default episode length of" in out
    assert json.loads((tmp_path / "t.json").read_text())["episode_length"] == 40
    assert read_config(folder).episode_length["command"].startswith("neural-sim benchmark-task")
    assert main(["benchmark-task", str(folder), "--agent", str(tmp_path / "missing.zip")]) == 2
    assert "no agent file at" in capsys.readouterr().err
    for bad in (["--steps", "0"], ["--episodes", "0"]):
        assert main(["benchmark-task", str(folder), *bad]) == 2
    assert "episodes and steps must be >= 1" in capsys.readouterr().err
    assert main(["benchmark-task", str(folder), "--task", "hop"]) == 2
    assert "unknown task 'hop' for robot 'cartpole'" in capsys.readouterr().err


def test_walker_agents_see_flat_observations_in_both_envs(tmp_path: Path) -> None:
    neural = agent_env(gym.make("NeuralSim/walker-stand-v0"))
    real = agent_env(make_real_env("dm_control/walker-stand-v0"))
    assert neural.observation_space == real.observation_space
    assert isinstance(neural.observation_space, gym.spaces.Box)
    pendulum = gym.make("NeuralSim/Pendulum-v0")
    assert agent_env(pendulum) is pendulum  # nothing to flatten
    agent = make_agent("sac", neural, seed=0)
    agent.save(tmp_path / "agent.zip")
    policy = load_policy(tmp_path / "agent.zip", gym.make("NeuralSim/walker-stand-v0").observation_space,
                         deterministic=True)
    obs, _ = real.reset(seed=0)
    unflat, _ = make_real_env("dm_control/walker-stand-v0").reset(seed=0)
    np.testing.assert_array_equal(policy(unflat), agent.predict(obs, deterministic=True)[0])


def test_rl_runs_on_walker_and_a_reference_only_folder_takes_runs_in_new_weights(tmp_path: Path) -> None:
    settings = {"steps": 20, "seeds": (0,), "eval_every": 20, "eval_episodes": 1}
    zero_shot("NeuralSim/walker-stand-v0", out=tmp_path, neural_sim=False, **settings, **QUIET)
    path = tmp_path / RESULTS_FILE
    saved = json.loads(path.read_text())
    path.write_text(json.dumps({**saved, "checkpoint_sha256": "0123456789ab"}))  # the weights changed since
    results = zero_shot("NeuralSim/walker-stand-v0", out=tmp_path, reference=False, **settings, **QUIET)
    assert sorted(results["runs"]["neural_sim"]) == ["0"] and sorted(results["runs"]["real"]) == ["0"]
    assert results["checkpoint_sha256"] == results["runs"]["neural_sim"]["0"]["checkpoint_sha256"]
    assert json.loads(path.read_text())["checkpoint_sha256"] == results["checkpoint_sha256"]


def _pushing_agent(sha256: str = "abc") -> AgentPolicy:
    return AgentPolicy(act=lambda _observation: np.array([0.5]), path="agents/push.zip", sha256=sha256,
                       command="neural-sim rl ... (its seed 0)")


def test_an_agent_drives_the_first_sequences_and_the_data_records_it() -> None:
    data = collect("pendulum", sequences=4, steps=30, seed=2, command="pytest", agents=[(_pushing_agent(), 2)])
    assert (data.actions[:2] == 0.5).all() and not (data.actions[2:] == 0.5).all()
    assert data.info.protocol == "poisson+agent" and data.info.agent_sequences == 2
    assert data.info.agents == (
        {"path": "agents/push.zip", "sha256": "abc", "command": "neural-sim rl ... (its seed 0)", "sequences": 2},)
    # The random sequences are those of the plain protocol with the same seed.
    plain = collect("pendulum", sequences=4, steps=30, seed=2, command="pytest")
    np.testing.assert_array_equal(data.actions[2:], plain.actions[2:])
    with pytest.raises(NeuralSimError, match=r"together at most sequences=4; got \[5\]"):
        collect("pendulum", sequences=4, steps=30, agents=[(_pushing_agent(), 5)])
    with pytest.raises(NeuralSimError, match=r"each agent must drive at least 1 sequence"):
        collect("pendulum", sequences=4, steps=30, agents=[(_pushing_agent(), 0)])


def test_several_agents_drive_the_first_sequences_in_turn() -> None:
    pulling = AgentPolicy(act=lambda _observation: np.array([-0.5]), path="agents/pull.zip", sha256="def")
    data = collect("pendulum", sequences=5, steps=10, seed=0, command="pytest",
                   agents=[(_pushing_agent(), 1), (pulling, 2)])
    assert (data.actions[0] == 0.5).all() and (data.actions[1:3] == -0.5).all()
    assert not (np.abs(data.actions[3:]) == 0.5).all()
    assert data.info.agent_sequences == 3
    assert [(a["path"], a["sequences"]) for a in data.info.agents] == [("agents/push.zip", 1), ("agents/pull.zip", 2)]


def test_agent_driven_data_regenerates_only_with_the_same_agent(tmp_path: Path) -> None:
    data = collect("pendulum", sequences=2, steps=20, seed=1, command="pytest", agents=[(_pushing_agent(), 1)])
    training = {"data": dataclasses.asdict(data.info)}
    (tmp_path / "agents").mkdir()
    training["data"]["agents"][0]["path"] = str(tmp_path / "agents" / "push.zip")
    with pytest.raises(NeuralSimError, match=r"driven by the agent .*push.zip \(made by `neural-sim rl"):
        recollect_training_data(training)
    (tmp_path / "agents" / "push.zip").write_bytes(b"an agent")
    again = recollect_training_data(training, load_agent=lambda path, task: _pushing_agent())
    np.testing.assert_array_equal(again.states, data.states)
    with pytest.raises(NeuralSimError, match="is not the one that drove this data"):
        recollect_training_data(training, load_agent=lambda path, task: _pushing_agent("other"))


def test_data_recorded_with_a_single_agent_before_several_regenerates(tmp_path: Path) -> None:
    data = collect("pendulum", sequences=2, steps=20, seed=1, command="pytest", agents=[(_pushing_agent(), 1)])
    (tmp_path / "push.zip").write_bytes(b"an agent")
    legacy = {k: v for k, v in dataclasses.asdict(data.info).items() if k != "agents"}
    legacy.update(agent=str(tmp_path / "push.zip"), agent_sha256="abc", agent_command="neural-sim rl ...")
    again = recollect_training_data({"data": legacy}, load_agent=lambda path, task: _pushing_agent())
    np.testing.assert_array_equal(again.states, data.states)
    assert again.info.agents[0]["path"] == "agents/push.zip"


def test_collect_command_takes_an_agent_from_the_rl_harness(tmp_path: Path) -> None:
    env = agent_env(gym.make("NeuralSim/walker-stand-v0"))
    make_agent("sac", env, seed=0).save(tmp_path / "real-seed0.zip")
    out = tmp_path / "data.safetensors"
    assert main(["collect", "walker", "--task", "stand", "--sequences", "2", "--steps", "5", "--agent",
                 str(tmp_path / "real-seed0.zip"), "--out", str(out)]) == 0
    info = Dataset.load(out).info
    assert info.agent_sequences == 1 and len(info.agents[0]["sha256"]) == 12
    assert main(["collect", "walker", "--sequences", "2", "--steps", "5", "--agent", str(tmp_path / "real-seed0.zip"),
                 "--agent-sequences", "1", "1", "--out", str(out)]) == 2


def test_a_recipe_written_for_a_single_agent_still_loads(tmp_path: Path) -> None:
    recipe = json.loads((RECIPES_DIR / "walker.json").read_text())
    recipe["data"]["agent_sequences"] = 1000
    (tmp_path / "old.json").write_text(json.dumps(recipe))
    assert load_recipe(tmp_path / "old.json").data.agent_sequences == (1000,)


def test_a_recipe_with_agent_driven_data_asks_for_its_agent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert sum(load_recipe("walker").data.agent_sequences) > 0
    assert main(["train", "--recipe", "walker", "--out", str(tmp_path / "w")]) == 2
    error = capsys.readouterr().err
    assert "collects 1000 of its sequences with 1 trained agent(s): give them with --agent, in order" in error
    assert "neural-sim rl NeuralSim/walker-stand-v0 --reference-only" in error
    assert main(["train", "--recipe", "hopper", "--agent", "x.zip", "--out", str(tmp_path / "h")]) == 2
    assert "collects no agent-driven sequences" in capsys.readouterr().err
