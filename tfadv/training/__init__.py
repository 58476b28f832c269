"""Training: optimizers, run folders with resume, and the training methods.

``train_from_config`` runs ``tfadv train``; ``assemble`` builds a config's
training (shared with ``tfadv tune``); ``fit_distributed`` is the loop of
``train.distribute: mirrored`` and ``multi_worker`` on public ``tf.distribute``
API. The ``keras.Model`` training methods (adversarial training, fine-tuning,
AdvProp, RobMask, BN-only) and their ``MethodKind`` protocols are in
``tfadv.training.methods``.
"""
from tfadv.training.optimizers import WarmupCosine, learning_rate_schedule, make_optimizer
from tfadv.models.io import load_model
from tfadv.training.callbacks import EpochCheckpoint, HistoryCSV, read_history
from tfadv.training.loop import fit_distributed
from tfadv.training.runner import Assembly, RunResult, assemble, load_split_arrays, make_strategy, train_from_config

__all__ = [
    "Assembly", "EpochCheckpoint", "HistoryCSV", "RunResult", "WarmupCosine", "assemble", "fit_distributed",
    "learning_rate_schedule", "load_model", "load_split_arrays", "make_optimizer", "make_strategy",
    "read_history", "train_from_config",
]
