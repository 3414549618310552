"""Training: the loop (on Accelerate) and data preparation."""

from occamtune.train.loop import FitResult, Trainer, TrainState

__all__ = ["FitResult", "TrainState", "Trainer"]
