"""Density models over (state, action): how familiar a learned simulator is with an input."""

from neural_sim.density.model import FLOW_KINDS, DensityConfig, DensityModel, calibrate

__all__ = ["FLOW_KINDS", "DensityConfig", "DensityModel", "calibrate"]
