"""Property-based tests of the public API: whatever comes in, the answer is finite values of
the documented shape or a NeuralSimError naming the argument; never a bare numpy or torch
exception, and never a silent NaN."""

from __future__ import annotations

import os
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import neural_sim
from neural_sim.envs.vector import NeuralSimVectorEnv
from neural_sim.errors import NeuralSimError, OutOfDomainWarning

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                derandomize=True)  # the same examples on every run: CI is reproducible

SIM = neural_sim.load("acrobot")  # nq = nv = 2, nu = 1
N, NU = SIM.state_size, SIM.nu

DTYPES = st.sampled_from([np.float64, np.float32, np.float16, np.int64, np.int8, np.bool_, np.complex64, object])
SHAPES = st.sampled_from([(), (0,), (N,), (NU,), (3, N), (3, NU), (0, N), (0, NU), (3, 5, NU), (5, NU), (2, N + 1),
                          (1, 1), (N, 3)])
SPECIAL = st.sampled_from([0.0, 0.5, -0.5, 1.0, np.nan, np.inf, -np.inf, 1e30, -1e300])


@st.composite
def arrays(draw: st.DrawFn) -> Any:
    """An array-like input: numpy of any dtype and shape (with NaN, inf, huge values),
    a list, a non-contiguous or meta-device tensor, or a scalar or string."""
    shape = draw(SHAPES)
    dtype = draw(DTYPES)
    if dtype is object:
        array: Any = np.empty(shape, dtype=object)
        array.fill(draw(st.sampled_from([None, "a", 0.5])))
    elif dtype is np.complex64:
        array = np.full(shape, 0.1 + 0.2j, dtype=np.complex64)
    else:
        values = hnp.from_dtype(np.dtype(np.float64), allow_nan=True, allow_infinity=True, min_value=None)
        array = draw(hnp.arrays(np.float64, shape, elements=st.one_of(SPECIAL, values)))
        with np.errstate(all="ignore"):
            array = array.astype(dtype) if dtype is not np.float64 else array
    form = draw(st.sampled_from(["numpy", "list", "tensor", "strided", "meta", "scalar", "text"]))
    if form == "list":
        return array.tolist()
    if form in ("tensor", "strided", "meta") and array.dtype != object:
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if form == "strided" and tensor.dim() >= 1:
            tensor = torch.repeat_interleave(tensor, 2, dim=-1)[..., ::2]  # same values, not contiguous
        return tensor.to("meta") if form == "meta" else tensor
    if form == "scalar":
        return 0.5
    if form == "text":
        return "0.5"
    return array


def _check_answer(call: Any, names: tuple[str, ...]) -> Any:
    """``call()`` returns (checked by the caller) or raises a NeuralSimError naming one of ``names``."""
    try:
        return call()
    except NeuralSimError as error:
        assert any(name in str(error) for name in names), f"{error!r} names none of {names}"
        return None


@FUZZ
@given(states=arrays(), actions=arrays(), rollout=st.booleans())
def test_simulator_step_and_rollout_answer_any_input_cleanly(states: Any, actions: Any, rollout: bool) -> None:
    result = _check_answer(lambda: (SIM.rollout if rollout else SIM.step)(states, actions), ("states", "actions"))
    if result is None:
        return
    values = result.detach().cpu().numpy() if isinstance(result, torch.Tensor) else np.asarray(result)
    assert values.shape[-1] == N and np.isfinite(values.astype(np.float64)).all()
    batch = np.shape(states)[0] if np.ndim(states) == 2 else None
    if batch is not None:
        assert values.shape[0] == batch


@FUZZ
@given(name=st.one_of(st.text(max_size=12), st.sampled_from(["acrobot", "", ".", "/", "a/b", "../x", "pendulum"])))
def test_load_answers_any_name_cleanly(name: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"  # a name spelled like a repo id must not reach the network
    result = _check_answer(lambda: neural_sim.load(name), (repr(name), name, "checkpoint"))
    assert result is None or isinstance(result, neural_sim.Simulator)


KWARGS = st.fixed_dictionaries({}, optional={
    "density_penalty": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=3)),
    "integrator": st.sampled_from(["rk4", "dopri5", "euler", "leapfrog", "", None]),
    "device": st.sampled_from(["cpu", "cuda:7", "meta", "potato", None]),
    "reset_from": st.sampled_from(["buffer", "task", "nowhere", None]),
    "out_of_domain": st.sampled_from(["truncate", "raise", "ignore", "clip", None]),
    "task": st.sampled_from(["swingup", "balance", "", None]),
    "backend": st.sampled_from(["neural", "physics", "mujoco"]),
    "reset_states": arrays(),
})


@FUZZ
@given(kwargs=KWARGS)
def test_gym_make_answers_any_keywords_cleanly(kwargs: dict[str, Any]) -> None:
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    env = _check_answer(lambda: gym.make("NeuralSim/Acrobot-v0", **kwargs), tuple(kwargs) or ("",))
    if env is not None:
        observation, _ = env.reset(seed=0)
        assert env.observation_space.contains(observation)


@FUZZ
@given(state=arrays(), extra=st.sampled_from([{}, {"seed": 3}, {"colour": 1}]))
def test_reset_answers_any_start_state_cleanly(state: Any, extra: dict[str, Any]) -> None:
    env = gym.make("NeuralSim/Acrobot-v0")
    result = _check_answer(lambda: env.reset(seed=0, options={"state": state, **extra}), ("state", "options"))
    if result is not None:
        assert env.observation_space.contains(result[0])


@FUZZ
@given(action=arrays())
def test_env_step_answers_any_action_cleanly(action: Any) -> None:
    env = gym.make("NeuralSim/Acrobot-v0")
    env.reset(seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutOfDomainWarning)
        result = _check_answer(lambda: env.unwrapped.step(action), ("action",))
    if result is not None:
        observation, reward, *_ = result
        assert env.observation_space.contains(observation) and np.isfinite(reward)


@FUZZ
@given(actions=arrays(), state=arrays(), mask=arrays(), seed=st.one_of(st.none(), st.integers(0, 2**31), st.lists(
    st.integers(0, 9), max_size=4)))
def test_batched_env_answers_any_input_cleanly(actions: Any, state: Any, mask: Any, seed: Any) -> None:
    env = NeuralSimVectorEnv(3, "acrobot")
    env.reset(seed=0)
    reset = _check_answer(lambda: env.reset(seed=seed, options={"state": state, "reset_mask": mask}),
                          ("seed", "state", "reset_mask"))
    if reset is not None:
        assert env.observation_space.contains(reset[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutOfDomainWarning)
        result = _check_answer(lambda: env.step(actions), ("actions",))
    if result is not None:
        _observations, rewards, *_ = result
        assert rewards.shape == (3,) and np.isfinite(rewards).all()
