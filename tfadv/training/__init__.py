"""Training: optimizers, run folders with resume, and the training methods.

``train_from_config`` runs ``tfadv train``; the ``keras.Model`` training
methods (adversarial training, fine-tuning, AdvProp, RobMask, BN-only) are in
``tfadv.training.methods``.
"""
from tfadv.training.optimizers import WarmupCosine, learning_rate_schedule, make_optimizer
from tfadv.training.runner import RunResult, load_split_arrays, make_strategy, train_from_config
from tfadv.models.io import load_model
from tfadv.training.callbacks import EpochCheckpoint, HistoryCSV, read_history

__all__ = [
    "EpochCheckpoint", "HistoryCSV", "RunResult", "WarmupCosine", "learning_rate_schedule",
    "load_model", "load_split_arrays", "make_optimizer", "make_strategy", "read_history",
    "train_from_config",
]
