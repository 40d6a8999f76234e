"""Model-free agents trained in a learned simulator and scored in the real one.

:func:`zero_shot` trains an off-the-shelf Stable-Baselines3 / sb3-contrib agent on a
``NeuralSim/...`` id with no change to the agent, scores it every few thousand steps in the
real environment the id mirrors, and trains the same agent on the real environment with
the same budget as the reference. :class:`FewShotLoop` is the paper's few-shot loop: real
steps with the current policy, fine-tuning of the model on them, resets from real states;
:func:`few_shot` measures its real-sample efficiency against the real-env reference.
"""

from neural_sim.rl.few_shot import FewShotLoop, few_shot, real_sample_efficiency
from neural_sim.rl.real_env import RealEnvEvaluation, real_env_id
from neural_sim.rl.runs import ALGORITHMS, make_agent
from neural_sim.rl.zero_shot import plot_learning_curves, summarise, zero_shot

__all__ = [
    "ALGORITHMS",
    "FewShotLoop",
    "RealEnvEvaluation",
    "few_shot",
    "make_agent",
    "plot_learning_curves",
    "real_env_id",
    "real_sample_efficiency",
    "summarise",
    "zero_shot",
]
