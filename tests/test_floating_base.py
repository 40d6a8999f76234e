"""Free and ball joints: quaternion kinematics, invariant inputs, and every layer taking them."""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from dm_control.suite import base
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import neural_sim
from neural_sim.envs.single import NeuralSimEnv
from neural_sim.envs.vector import NeuralSimVectorEnv
from neural_sim.errors import InputError
from neural_sim.model.config import (
    IntegratorConfig,
    ModelConfig,
    NetworkConfig,
    RotationJoint,
    SimulatorConfig,
    StateLayout,
    default_normalisation,
)
from neural_sim.model.domain import DataDomain
from neural_sim.model.rotations import angle_between, quaternion_multiply
from neural_sim.model.simulator import Simulator
from neural_sim.pipeline.benchmark import benchmark
from neural_sim.pipeline.collect import collect
from neural_sim.pipeline.train import TrainConfig, train
from neural_sim.robots import DmControlTask, robot_spec
from neural_sim.robots.activation import ActuatorActivation, activation_layout
from neural_sim.robots.batched import BatchedTask, BridgeLoopTask, make_batched_task

BOX_LEGS = Path(__file__).resolve().parents[1] / "examples" / "custom_robot" / "box_legs.xml"
TINY_RESIDUAL = ModelConfig(architecture="residual", residual=NetworkConfig(1, 32))
TINY_MOSIM = ModelConfig(position_encoder=NetworkConfig(1, 16), state_encoder=NetworkConfig(1, 16),
                         action_encoder=NetworkConfig(0, 8), correctors=(NetworkConfig(1, 16),))


def floating_layout(ball: bool = False) -> StateLayout:
    """A free root (7 qpos, 6 qvel), two hinges and optionally a ball joint, x and y invariant."""
    joints = [RotationJoint("root", "free", 0, 0)]
    nq, nv = 9, 8
    if ball:
        joints.append(RotationJoint("neck", "ball", 9, 8))
        nq, nv = 13, 11
    return StateLayout(nq=nq, nv=nv, nu=2, dt=0.02, action_low=(-1.0, -1.0), action_high=(1.0, 1.0),
                       invariant_qpos=(0, 1), rotation_joints=tuple(joints))


def simulator(layout: StateLayout, model: ModelConfig = TINY_RESIDUAL, seed: int = 0,
              substeps: int = 1, method: str = "rk4") -> Simulator:
    torch.manual_seed(seed)
    config = SimulatorConfig(layout, model, IntegratorConfig(method, substeps),  # type: ignore[arg-type]
                             default_normalisation(layout))
    return Simulator(config)


def random_states(layout: StateLayout, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    states = rng.normal(size=(n, layout.state_size))
    for joint in layout.rotation_joints:
        idx = list(joint.quaternion_qpos)
        states[:, idx] /= np.linalg.norm(states[:, idx], axis=1, keepdims=True)
    return states


def yaw_quaternion(angle: float) -> np.ndarray:
    return np.array([math.cos(angle / 2), 0.0, 0.0, math.sin(angle / 2)])


def turned_about_z(states: np.ndarray, angle: float) -> np.ndarray:
    """The same states with the whole robot turned by ``angle`` about the world z axis and
    moved in x, y: a free root's position, orientation and world-frame linear velocity turn."""
    c, s = math.cos(angle), math.sin(angle)
    turn = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    out = states.copy()
    out[:, 0:3] = states[:, 0:3] @ turn.T + np.array([3.0, -2.0, 0.0])
    yaw = torch.tensor(yaw_quaternion(angle)).expand(len(states), 4)
    out[:, 3:7] = quaternion_multiply(yaw, torch.tensor(states[:, 3:7])).numpy()
    nq = 9 if states.shape[1] == 17 else 13
    out[:, nq:nq + 3] = states[:, nq:nq + 3] @ turn.T
    return out


@pytest.mark.parametrize("ball", [False, True])
def test_a_field_with_zero_acceleration_turns_a_body_by_the_exponential_of_its_angular_velocity(ball: bool) -> None:
    layout = floating_layout(ball)
    sim = simulator(layout)
    for parameter in sim.field.parameters():
        parameter.data.zero_()  # the residual network outputs 0: constant velocities
    state = random_states(layout, 1)[0]
    omega = np.array([0.7, -1.3, 2.1])
    state[layout.nq + 3: layout.nq + 6] = omega
    after = sim.step(state.astype(np.float64), np.zeros(2))
    # q(t) = q0 * exp(omega t / 2) for a body-frame omega, exactly.
    t, norm = layout.dt, np.linalg.norm(omega)
    turn = np.concatenate([[math.cos(norm * t / 2)], math.sin(norm * t / 2) * omega / norm])
    expected = quaternion_multiply(torch.tensor(state[3:7]), torch.tensor(turn)).numpy()
    np.testing.assert_allclose(after[3:7], expected, atol=1e-6)
    np.testing.assert_allclose(after[0:3], state[0:3] + t * state[layout.nq: layout.nq + 3], atol=1e-6)


@pytest.mark.parametrize(("path", "method"), [("fast", "rk4"), ("torchdiffeq", "rk4"), ("fast", "euler")])
def test_quaternions_stay_unit_and_never_flip_sign_over_10000_steps(path: str, method: str) -> None:
    layout = floating_layout(ball=True)
    sim = simulator(layout, substeps=2, method=method)
    for parameter in sim.field.parameters():
        parameter.data.zero_()
    states = torch.tensor(random_states(layout, 8), dtype=torch.float32)
    states[:, layout.nq:] = torch.randn(8, layout.nv) * 5  # fast spins: 0.1-0.3 rad per step
    actions = torch.zeros(8, 2)
    step = sim.fast_predict if path == "fast" else sim.predict
    trajectory = [states]
    with torch.no_grad():
        for _ in range(10_000 if path == "fast" else 200):
            trajectory.append(step(trajectory[-1], actions))
    quaternions = torch.stack(trajectory)[..., list(layout.quaternion_qpos)].unflatten(-1, (2, 4))
    assert float((quaternions.norm(dim=-1) - 1).abs().max()) < 1e-5
    # Consecutive quaternions on the same side of the sphere: no sign flip.
    assert float((quaternions[1:] * quaternions[:-1]).sum(-1).min()) > 0.9


@pytest.mark.parametrize("model", [TINY_RESIDUAL, TINY_MOSIM], ids=["residual", "mosim"])
def test_heading_and_horizontal_position_do_not_change_the_predicted_motion(model: ModelConfig) -> None:
    layout = floating_layout(ball=True)
    sim = simulator(layout, model)
    states = random_states(layout, 16)
    actions = np.random.default_rng(1).uniform(-1, 1, size=(16, 2))
    for angle in (0.4, 2.5, -1.9):
        predicted_then_turned = turned_about_z(sim.step(states, actions), angle)
        turned_then_predicted = sim.step(turned_about_z(states, angle), actions)
        assert angle_between(predicted_then_turned[:, 3:7], turned_then_predicted[:, 3:7]).max() < 1e-5
        np.testing.assert_allclose(turned_then_predicted, predicted_then_turned, atol=2e-5)


def test_a_quaternion_and_its_negative_give_the_same_motion() -> None:
    layout = floating_layout(ball=True)
    sim = simulator(layout)
    states = random_states(layout, 8)
    flipped = states.copy()
    flipped[:, 3:7] *= -1
    flipped[:, 9:13] *= -1
    actions = np.zeros((8, 2))
    a, b = sim.step(states, actions), sim.step(flipped, actions)
    assert angle_between(a[:, 3:7], b[:, 3:7]).max() < 1e-5
    np.testing.assert_allclose(np.delete(a, [3, 4, 5, 6, 9, 10, 11, 12], 1),
                               np.delete(b, [3, 4, 5, 6, 9, 10, 11, 12], 1), atol=1e-5)


def test_a_state_of_the_wrong_size_is_refused_with_the_layout_spelled_out() -> None:
    sim = simulator(floating_layout())
    with pytest.raises(InputError, match=r"qpos\[0:7\] / qvel\[0:6\]: free joint 'root' \(qpos: x, y, z, qw"):
        sim.step(np.zeros(16), np.zeros(2))


def test_a_quaternion_of_the_wrong_norm_is_refused_naming_the_joint() -> None:
    layout = floating_layout(ball=True)
    sim = simulator(layout)
    states = random_states(layout, 3)
    states[2, 9:13] *= 1.5
    with pytest.raises(InputError, match=r"states\[2\]: the quaternion of ball joint 'neck' \(qpos\[9:13\].*norm 1.5"):
        sim.step(states, np.zeros((3, 2)))


def test_a_quaternion_slightly_off_the_sphere_is_read_as_mujoco_reads_it() -> None:
    # Gymnasium's Ant resets add noise to the quaternion; MuJoCo reads q as q / |q|.
    layout = floating_layout(ball=True)
    sim = simulator(layout)
    states = random_states(layout, 4)
    scaled = states.copy()
    scaled[:, 3:7] *= 1.15
    scaled[:, 9:13] *= 0.9
    actions = np.zeros((4, 2))
    np.testing.assert_allclose(sim.step(scaled, actions), sim.step(states, actions), atol=1e-6)


def test_a_layout_whose_sizes_do_not_add_up_is_refused() -> None:
    layout = dataclasses.replace(floating_layout(), nq=10)
    with pytest.raises(ValueError, match="nq=10 must equal nv=8 plus one per free or ball joint"):
        simulator(layout)


def test_the_data_domain_does_not_check_quaternions_or_horizontal_position() -> None:
    layout = floating_layout(ball=True)
    domain = DataDomain.from_states(random_states(layout, 100), layout)
    assert not {0, 1, 3, 4, 5, 6, 9, 10, 11, 12} & set(domain.dims)


def test_the_data_domain_checks_a_free_joints_velocity_whatever_the_heading() -> None:
    layout = floating_layout()
    states = random_states(layout, 200)
    domain = DataDomain.from_states(states, layout, margin=1e-9)  # the data's own range, to rounding
    assert domain.body_frame
    for angle in (0.5, 2.0, -2.8):
        assert not domain.outside(turned_about_z(states, angle), layout).any()
    with pytest.raises(ValueError, match="pass the layout"):
        domain.outside(states)


def test_the_quadruped_spec_declares_its_free_root_and_same_ground_tasks() -> None:
    spec = robot_spec("quadruped")
    assert spec.layout.rotation_joints == (RotationJoint("root", "free", 0, 0),)
    assert spec.layout.invariant_qpos == (0, 1)
    assert spec.info.tasks == ("walk", "run")  # fetch adds a ball, escape rough terrain


# -- a custom floating-base robot through the whole pipeline --------------------------------


class Forward(base.Task):
    """Run along +x: the user's task for the box-and-legs robot."""

    def get_observation(self, physics):  # type: ignore[no-untyped-def]
        return OrderedDict(position=physics.data.qpos[2:].copy(), velocity=physics.data.qvel.copy())

    def get_reward(self, physics):  # type: ignore[no-untyped-def]
        return float(physics.data.qvel[0])


@pytest.fixture(scope="module")
def box_legs_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = collect(str(BOX_LEGS), sequences=6, steps=150, seed=0, command="pytest")
    out = tmp_path_factory.mktemp("floating") / "box_legs"
    train(data, robot_spec(str(BOX_LEGS)), out, TINY_RESIDUAL,
          config=TrainConfig(iterations=20, batch_size=64, eval_every=10), command="pytest", progress=False,
          log=lambda _: None)
    return out


def test_a_floating_mjcf_robot_trains_and_its_envs_pass_both_checkers(box_legs_checkpoint: Path) -> None:
    env = NeuralSimEnv(checkpoint=str(box_legs_checkpoint), task=Forward())
    check_env(env, skip_render_check=True)
    sb3_check_env(NeuralSimEnv(checkpoint=str(box_legs_checkpoint), task=Forward()))
    ids = neural_sim.register_checkpoint(box_legs_checkpoint)
    made = gym.make(ids[0], task=Forward())
    made.reset(seed=0)
    for _ in range(20):
        _, reward, _, _, info = made.step(made.action_space.sample())
        assert abs(np.linalg.norm(info["state"][3:7]) - 1) < 1e-6
        assert np.isfinite(reward)


def test_the_physics_backend_of_a_floating_robot_steps_real_mujoco(box_legs_checkpoint: Path) -> None:
    oracle = NeuralSimEnv(checkpoint=str(box_legs_checkpoint), task=Forward(), backend="physics")
    oracle.reset(seed=3)
    for _ in range(30):
        *_, info = oracle.step(oracle.action_space.sample())
    assert abs(np.linalg.norm(info["state"][3:7]) - 1) < 1e-9


def test_a_floating_robot_batched_env_steps_and_refuses_bad_reset_states(box_legs_checkpoint: Path) -> None:
    env = NeuralSimVectorEnv(checkpoint=str(box_legs_checkpoint), num_envs=3, task=Forward())
    env.reset(seed=0)
    for _ in range(10):
        _, rewards, _, _, info = env.step(env.action_space.sample())
    assert np.isfinite(rewards).all()
    np.testing.assert_allclose(np.linalg.norm(info["state"][:, 3:7], axis=1), 1, atol=1e-6)
    single = NeuralSimEnv(checkpoint=str(box_legs_checkpoint), task=Forward())
    start = single.reset(seed=0)[1]["state"]
    bad = start.copy()
    bad[3:7] = 0.0
    with pytest.raises(InputError, match=r"free joint 'root'.*norm 0"):
        single.reset(options={"state": bad})
    bad = start.copy()
    bad[11 + 4] = np.nan
    with pytest.raises(InputError, match=r"NaN or inf \(first at qvel\[4\] \(free joint 'root', wy\)\)"):
        single.reset(options={"state": bad})


def test_the_benchmark_reports_orientation_error_as_an_angle(box_legs_checkpoint: Path) -> None:
    report = benchmark(box_legs_checkpoint, sequences=2, seed=1, horizons=(3, 16), windows_per_sequence=4)
    for row in report["horizons"].values():
        assert set(row["orientation_error_deg"]) == {"root"}
        assert 0 <= row["orientation_error_deg"]["root"] < 180
        assert 0 <= row["hold_last_state_orientation_error_deg"]["root"] < 180
    assert "lyapunov" not in report and "free or ball joints" in report["lyapunov_skipped"]


def _quadruped_actions(bridge: DmControlTask, steps: int, seed: int = 0) -> np.ndarray:
    low, high = bridge.action_space.low, bridge.action_space.high
    return np.random.default_rng(seed).uniform(low, high, size=(steps, len(low)))


def test_a_learned_step_advances_actuator_activations_exactly_as_mujoco() -> None:
    real, bridge = DmControlTask("quadruped", "walk", seed=0), DmControlTask("quadruped", "walk")
    assert bridge.na == 12  # position servos whose target follows the control with a 0.1 s lag
    bridge.reset_to(real.reset_random())
    actions = _quadruped_actions(real, 40)
    actions[::5] *= 1.5  # beyond the control range: MuJoCo clamps before filtering
    for action in actions:
        previous = real.get_state()
        real.step_physics(action)
        bridge.transition(previous, action, real.get_state())
        np.testing.assert_allclose(bridge.activations, real.activations, rtol=0, atol=1e-12)
        np.testing.assert_allclose(bridge.observation()["egocentric_state"], real.observation()["egocentric_state"],
                                   rtol=0, atol=1e-12)
    assert np.abs(real.activations).max() > 0.1


def test_the_neural_env_observes_the_activations_the_real_env_would() -> None:
    env = gym.make("NeuralSim/quadruped-walk-v0", max_episode_steps=20)
    real = DmControlTask("quadruped", "walk")
    obs, _ = env.reset(seed=0)
    assert not obs["egocentric_state"][-12:].any()  # episodes start at rest, as MuJoCo's reset
    real.reset_to(env.unwrapped.state)
    for action in _quadruped_actions(real, 10):
        obs, *_ = env.step(action.astype(np.float32))
        real.step_physics(action.astype(np.float32))  # activations follow the actions alone
        np.testing.assert_allclose(obs["egocentric_state"][-12:], real.activations, rtol=0, atol=1e-6)


def test_each_batched_env_keeps_its_own_activations() -> None:
    envs = gym.make_vec("NeuralSim/quadruped-walk-v0", num_envs=2)
    singles = [DmControlTask("quadruped", "walk") for _ in range(2)]
    _, info = envs.reset(seed=0)
    for single, state in zip(singles, info["state"], strict=True):
        single.reset_to(state)
    actions = [_quadruped_actions(singles[0], 6, seed) for seed in (0, 1)]
    for t in range(6):
        obs, *_ = envs.step(np.stack([actions[0][t], actions[1][t]]).astype(np.float32))
        for i, single in enumerate(singles):
            single.step_physics(actions[i][t].astype(np.float32))  # activations follow the actions alone
            np.testing.assert_allclose(obs["egocentric_state"][i, -12:], single.activations, rtol=0, atol=1e-6)
    envs.reset(options={"reset_mask": np.array([False, True])})
    obs, *_ = envs.step(np.stack([actions[0][0], actions[1][0]]).astype(np.float32))
    singles[0].step_physics(actions[0][0].astype(np.float32))
    fresh = DmControlTask("quadruped", "walk")
    fresh.reset_to(singles[1].get_state())
    fresh.step_physics(actions[1][0].astype(np.float32))  # env 1 starts again from zero activations
    np.testing.assert_allclose(obs["egocentric_state"][0, -12:], singles[0].activations, rtol=0, atol=1e-6)
    np.testing.assert_allclose(obs["egocentric_state"][1, -12:], fresh.activations, rtol=0, atol=1e-6)


def test_a_batched_step_of_a_robot_with_activations_refuses_missing_ones() -> None:
    task = BridgeLoopTask(DmControlTask("quadruped", "walk"))
    states = torch.as_tensor(DmControlTask("quadruped", "walk", seed=0).reset_random()[None])
    with pytest.raises(InputError, match=r"12 actuator activations: a batched step needs them as \[1, 12\]"):
        task.step(states, np.zeros((1, 12)), states)
    with pytest.raises(InputError, match=r"got \(1, 3\)"):
        make_batched_task(DmControlTask("quadruped", "walk")).step(states, np.zeros((1, 12)), states,
                                                                   activations=np.zeros((1, 3)))


def _native_and_stock(domain: str, task: str, n: int, noise: float
                      ) -> tuple[BatchedTask, BridgeLoopTask, DmControlTask, np.random.Generator, torch.Tensor]:
    """A domain's native batched task, the stock one through the bridge loop, a seeded real
    task, a generator, and ``n`` of its stock starts with ``noise`` added (the free root's
    quaternion kept unit, the first half upright)."""
    native = make_batched_task(DmControlTask(domain, task), num_envs=n)
    assert native.native
    real = DmControlTask(domain, task, seed=0)
    rng = np.random.default_rng(0)
    starts = np.stack([real.reset_random() for _ in range(n)])
    states = torch.as_tensor(starts + rng.normal(size=starts.shape) * noise)
    states[:, 3:7] = torch.as_tensor(starts[:, 3:7])  # unit quaternions: the real starts' orientations
    states[: n // 2, 3:7] = torch.tensor([1.0, 0.0, 0.0, 0.0])
    return native, BridgeLoopTask(DmControlTask(domain, task)), real, rng, states


@pytest.mark.parametrize("task", ["walk", "run"])
def test_the_batched_quadruped_task_equals_the_stock_one_env_by_env(task: str) -> None:
    native, reference, real, rng, states = _native_and_stock("quadruped", task, 40, 0.3)
    states[:20, 23] += torch.as_tensor(rng.uniform(0, 8, size=20))  # some upright ones moving forward
    rule = ActuatorActivation(activation_layout(real.physics.model.ptr, real.n_sub_steps))
    activations = np.zeros((40, 12))
    for key, value in reference.observations(states).items():
        np.testing.assert_allclose(native.observations(states)[key], value, rtol=0, atol=1e-6)
    for t in range(3):  # activations carry over from step to step, env by env
        actions = rng.uniform(-1, 1, size=(40, 12)) * (1.5 if t == 1 else 1.0)
        actions = np.clip(actions, real.action_space.low, real.action_space.high)
        activations = rule.advance(activations, actions)  # the env's job: carried from step to step
        expected = reference.step(states, actions, states, activations=activations)
        found = native.step(states, actions, states, activations=activations)
        for key, value in expected[0].items():
            np.testing.assert_allclose(found[0][key], value, rtol=0, atol=1e-6)
        np.testing.assert_allclose(found[1], expected[1], rtol=0, atol=1e-6)
    assert 0 < expected[1].mean() and (expected[1] < 1).any()
    rows = np.array([3, 7])
    subset = native.step(states[rows], actions[rows], states[rows], rows, activations[rows])
    np.testing.assert_allclose(subset[1], reference.step(states[rows], actions[rows], states[rows], rows,
                                                         activations[rows])[1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("task", ["stand", "walk", "run", "run_pure_state"])
def test_the_batched_humanoid_task_equals_the_stock_one_env_by_env(task: str) -> None:
    native, reference, _, rng, states = _native_and_stock("humanoid", task, 60, 0.2)
    states[:30, 2] = torch.as_tensor(rng.uniform(1.2, 1.5, size=30))
    states[:30, 7:28] *= 0.1
    states[:30, 28:30] = torch.as_tensor(rng.uniform(-12, 12, size=(30, 2)))  # ... some moving
    actions = rng.uniform(-1.2, 1.2, size=(60, 21))
    expected, found = reference.step(states, actions, states), native.step(states, actions, states)
    assert list(found[0]) == list(expected[0])
    for key, value in expected[0].items():
        np.testing.assert_allclose(found[0][key], value, rtol=0, atol=1e-6)
    np.testing.assert_allclose(found[1], expected[1], rtol=0, atol=1e-6)
    assert 0 < expected[1].mean() and (expected[1] < 0.5).any() and (expected[1] > 0.3).any()
    for key, value in reference.observations(states).items():
        np.testing.assert_allclose(native.observations(states)[key], value, rtol=0, atol=1e-6)
