"""Exceptions raised by neural-sim.

All derive from :class:`NeuralSimError` (a ``ValueError``), so callers can catch one type;
the subclasses say which kind of input was wrong.
"""

from __future__ import annotations


class NeuralSimError(ValueError):
    """Base class of every error neural-sim raises for bad input."""


class CheckpointError(NeuralSimError):
    """A checkpoint folder is missing, incomplete, corrupted or of an unsupported version."""


class UnknownNameError(NeuralSimError, KeyError):
    """A robot, task, checkpoint or environment name is not known.

    Also a ``KeyError`` so that dictionary-style lookups keep their usual contract.
    """

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class InputError(NeuralSimError):
    """A state or action has the wrong shape, dtype, or contains NaN/inf or out-of-range values."""


class DivergenceError(RuntimeError):
    """A learned simulator produced a non-finite state (it was driven far outside its data)."""


class OutOfDomainError(NeuralSimError):
    """A step left the region the model's training data covers, with ``out_of_domain="raise"``."""


class OutOfDomainWarning(UserWarning):
    """A step left the region the model's training data covers; its episode was truncated."""
