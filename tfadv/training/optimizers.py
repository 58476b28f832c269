"""Optimizers and learning-rate schedules from a ``TrainConfig``."""
import math

import keras


@keras.saving.register_keras_serializable(package="tfadv")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``base`` over ``warmup_steps``, then cosine decay to 0.

    lr(t) = base · t / warmup for t < warmup, else
    base · ½ (1 + cos(π (t − warmup) / (total − warmup))).
    """

    def __init__(self, base, total_steps, warmup_steps=0):
        self.base = float(base)
        self.total_steps = int(max(total_steps, 1))
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warm = self.base * step / max(self.warmup_steps, 1)
        progress = (step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1)
        progress = keras.ops.clip(progress, 0.0, 1.0)
        cosine = self.base * 0.5 * (1.0 + keras.ops.cos(math.pi * progress))
        return keras.ops.where(step < self.warmup_steps, warm, cosine)

    def get_config(self):
        return {"base": self.base, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps}


def learning_rate_schedule(train, steps_per_epoch):
    """The schedule a ``TrainConfig`` asks for, in optimizer steps."""
    total = max(train.epochs, 1) * steps_per_epoch
    if train.schedule == "constant":
        return train.learning_rate
    if train.schedule == "cosine":
        return WarmupCosine(train.learning_rate, total, train.warmup_epochs * steps_per_epoch)
    if train.schedule == "step":
        boundaries = [int(m) * steps_per_epoch for m in train.step_milestones]
        values = [train.learning_rate * 0.1**i for i in range(len(boundaries) + 1)]
        return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    raise ValueError(f"Unknown schedule {train.schedule!r}; use cosine, constant or step")


def make_optimizer(train, steps_per_epoch):
    """SGD with momentum (the papers' choice) or Adam, with weight decay and the schedule.

    Weight decay is Keras' decoupled form (w ← w − lr·wd·w each step), applied
    to every variable as the papers' PyTorch code does.
    """
    lr = learning_rate_schedule(train, steps_per_epoch)
    decay = train.weight_decay or None
    if train.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=train.momentum, nesterov=train.nesterov, weight_decay=decay)
    if train.optimizer == "adam":
        return keras.optimizers.Adam(lr, weight_decay=decay)
    raise ValueError(f"Unknown optimizer {train.optimizer!r}; use sgd or adam")
