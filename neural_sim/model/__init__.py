"""The learned dynamics model: pure torch, knows nothing of Gymnasium or MuJoCo."""

from neural_sim.model.config import (
    IntegratorConfig,
    ModelConfig,
    NetworkConfig,
    Normalisation,
    SimulatorConfig,
    StateLayout,
)
from neural_sim.model.dynamics import MoSimField, ResidualField, VectorField, build_vector_field
from neural_sim.model.simulator import Simulator

__all__ = [
    "IntegratorConfig",
    "MoSimField",
    "ModelConfig",
    "NetworkConfig",
    "Normalisation",
    "ResidualField",
    "Simulator",
    "SimulatorConfig",
    "StateLayout",
    "VectorField",
    "build_vector_field",
]
