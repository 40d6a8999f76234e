"""Stock task quantities for a whole batch of physics states at once.

A :class:`BatchedTask` returns observations, rewards and terminations for ``[N, nq + nv]``
states. Tasks with a torch-native implementation compute them without a Python loop over
environments, one file per domain, found through :data:`NATIVE_TASKS`; each is tested equal
to the stock dm_control definition (tolerance 1e-6); Gymnasium envs' through
:data:`GYMNASIUM_NATIVE_TASKS`, tested equal to the env's own ``step``. Every other task
falls back to
:class:`BridgeLoopTask`, which writes each state into the real ``Physics`` in turn: exact,
but a Python loop. Adding a robot's native task adds a file and a row of the table.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from neural_sim.errors import InputError
from neural_sim.robots.base import TaskBridge
from neural_sim.robots.batched.acrobot import AcrobotBalance
from neural_sim.robots.batched.base import (
    BatchedTask,
    BridgeLoopTask,
    Observations,
    PhysicsReadout,
    StateTask,
    StepResult,
    assign_rows,
    merge_rows,
    observation_row,
    stack_observations,
    tolerance,
)
from neural_sim.robots.batched.cartpole import CartpoleTask
from neural_sim.robots.batched.cheetah import CheetahRun
from neural_sim.robots.batched.gymnasium import AntForward, HalfCheetahForward, InvertedPendulumBalance
from neural_sim.robots.batched.hopper import HopperTask
from neural_sim.robots.batched.humanoid import HUMANOID_TASKS, HumanoidTask
from neural_sim.robots.batched.pendulum import PendulumSwingUp
from neural_sim.robots.batched.quadruped import QuadrupedMove
from neural_sim.robots.batched.reacher import ReacherReach
from neural_sim.robots.batched.walker import WalkerTask
from neural_sim.robots.dm_control import DmControlTask
from neural_sim.robots.gymnasium_mujoco import GymnasiumMujocoTask

#: ``(dm_control domain, task) -> factory(bridge, num_envs, device)`` of the torch-native tasks
#: (``device``: where the states they are given live).
NATIVE_TASKS: dict[tuple[str, str], Callable[[DmControlTask, int, torch.device], BatchedTask]] = {
    ("acrobot", "swingup"): lambda bridge, _, device: AcrobotBalance(bridge, sparse=False, device=device),
    ("acrobot", "swingup_sparse"): lambda bridge, _, device: AcrobotBalance(bridge, sparse=True, device=device),
    ("pendulum", "swingup"): lambda bridge, _, device: PendulumSwingUp(bridge),
    ("cheetah", "run"): lambda bridge, _, device: CheetahRun(bridge, device),
    **{("cartpole", task): (lambda bridge, _, device: CartpoleTask(bridge, bridge.task_name.endswith("_sparse"),
                                                                   device))
       for task in ("balance", "balance_sparse", "swingup", "swingup_sparse")},
    ("reacher", "easy"): ReacherReach,
    ("reacher", "hard"): ReacherReach,
    **{("walker", task): (lambda bridge, _, device: WalkerTask(bridge, device)) for task in ("stand", "walk", "run")},
    ("hopper", "stand"): lambda bridge, _, device: HopperTask(bridge, device),
    ("hopper", "hop"): lambda bridge, _, device: HopperTask(bridge, device),
    # MuJoCo computes what these read (sensors, contacts), on the host.
    ("quadruped", "walk"): lambda bridge, _, device: QuadrupedMove(bridge),
    ("quadruped", "run"): lambda bridge, _, device: QuadrupedMove(bridge),
    **{("humanoid", task): (lambda bridge, _, device: HumanoidTask(bridge)) for task in HUMANOID_TASKS},
}
#: Gymnasium env id -> factory(bridge, num_envs, device) of the torch-native tasks.
GYMNASIUM_NATIVE_TASKS: dict[str, Callable[[GymnasiumMujocoTask, int, torch.device], BatchedTask]] = {
    "HalfCheetah-v5": lambda bridge, _, device: HalfCheetahForward(bridge),
    "InvertedPendulum-v5": lambda bridge, _, device: InvertedPendulumBalance(bridge),
    "Ant-v5": lambda bridge, _, device: AntForward(bridge),
}


def make_batched_task(bridge: TaskBridge, native: bool = True, num_envs: int = 1,
                      device: torch.device | str = "cpu") -> BatchedTask:
    """The torch-native implementation of the bridge's task if there is one, else the loop.

    :param native: use a native implementation where :data:`NATIVE_TASKS` has one.
    :param num_envs: the batch size (tasks with per-env state, such as reacher's targets).
    :param device: where the states the task is given live (its constants are put there;
        what only MuJoCo computes is computed on the host).
    :raises InputError: for a task without a native implementation whose episodes carry
        state outside ``(qpos, qvel)``: one shared physics cannot hold one per env.
    """
    if native and isinstance(bridge, DmControlTask):
        factory = NATIVE_TASKS.get((bridge.domain, bridge.task_name))
        if factory is not None:
            try:
                return factory(bridge, num_envs, torch.device(device))
            except NotImplementedError:  # a model whose geometry the native task does not cover
                pass
    if native and isinstance(bridge, GymnasiumMujocoTask):
        gymnasium_factory = GYMNASIUM_NATIVE_TASKS.get(bridge.env_id)
        if gymnasium_factory is not None:
            return gymnasium_factory(bridge, num_envs, torch.device(device))
    if getattr(bridge, "has_episode_state", False):
        # One shared physics cannot hold a different target per env.
        raise InputError(
            f"the batched env has no native implementation of task {bridge.task_name!r}, whose episodes carry "
            "state outside (qpos, qvel) (a target drawn per episode); use the single env "
            "(gymnasium.make, or SB3's make_vec_env with n_envs=N) for this task"
        )
    return BridgeLoopTask(bridge)


__all__ = [
    "GYMNASIUM_NATIVE_TASKS",
    "NATIVE_TASKS",
    "BatchedTask",
    "BridgeLoopTask",
    "Observations",
    "PhysicsReadout",
    "StateTask",
    "StepResult",
    "assign_rows",
    "make_batched_task",
    "merge_rows",
    "observation_row",
    "stack_observations",
    "tolerance",
]
