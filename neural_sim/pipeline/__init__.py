"""From real robots to published checkpoints: collect, train, benchmark, fit, publish."""
