"""Model-free agents trained in a learned simulator and scored in the real one.

:func:`zero_shot` trains an off-the-shelf Stable-Baselines3 / sb3-contrib agent on a
``NeuralSim/...`` id with no change to the agent, scores it every few thousand steps in the
real environment the id mirrors, and trains the same agent on the real environment with
the same budget as the reference. :class:`FewShotLoop` is the paper's few-shot loop: real
steps with the current policy, fine-tuning of the model on them, resets from real states.
"""

from neural_sim.rl.evaluation import RealEnvEvaluation, real_env_id
from neural_sim.rl.few_shot import FewShotLoop
from neural_sim.rl.zero_shot import ALGORITHMS, make_agent, plot_learning_curves, summarise, zero_shot

__all__ = [
    "ALGORITHMS",
    "FewShotLoop",
    "RealEnvEvaluation",
    "make_agent",
    "plot_learning_curves",
    "real_env_id",
    "summarise",
    "zero_shot",
]
