"""What a search maximizes: clean accuracy, robust accuracy, or their weighted sum.

The training methods' ``test_step`` reports ``accuracy`` (clean) and
``robust_accuracy`` (under the method's attack), which ``fit`` logs as
``val_accuracy`` and ``val_robust_accuracy``. The weighted objective

    val_tradeoff = w · val_accuracy + (1 − w) · val_robust_accuracy

is added to the epoch logs by :class:`TradeOffMetric`, so keras-tuner tracks
it like any metric (best epoch, checkpoint of the best epoch, history).
"""

import keras
import keras_tuner

from tfadv.checks import check_choice, check_in_interval

OBJECTIVES = ("val_accuracy", "val_robust_accuracy", "weighted")
TRADEOFF = "val_tradeoff"
CLEAN = "val_accuracy"
ROBUST = "val_robust_accuracy"


def tradeoff(clean, robust, clean_weight):
    """``w · clean + (1 − w) · robust``, the weighted objective."""
    check_in_interval("clean_weight", clean_weight)
    return clean_weight * clean + (1.0 - clean_weight) * robust


def objective_metric(objective):
    """The name of the logged metric an objective name maximizes."""
    check_choice("objective", objective, OBJECTIVES)
    return TRADEOFF if objective == "weighted" else objective


def make_objective(objective):
    """The ``keras_tuner.Objective`` of ``tune.objective``, direction declared: all are maximized.

    keras-tuner only infers directions for metric names it knows
    (``val_robust_accuracy`` and ``val_tradeoff`` are not among them).
    """
    return keras_tuner.Objective(objective_metric(objective), direction="max")


class TradeOffMetric(keras.callbacks.Callback):
    """Adds ``val_tradeoff = w·val_accuracy + (1 − w)·val_robust_accuracy`` to the epoch logs.

    Keras hands one logs dict to every callback in list order, and
    ``History`` comes last, so with this callback first the value is seen by
    the callbacks after it (keras-tuner's objective tracking and best-epoch
    checkpoint) and recorded in the returned ``History``.

    Args:
        clean_weight: w in [0, 1]; 1 is clean accuracy only, 0 robust only.
    """

    def __init__(self, clean_weight):
        super().__init__()
        check_in_interval("clean_weight", clean_weight)
        self.clean_weight = float(clean_weight)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        missing = [name for name in (CLEAN, ROBUST) if name not in logs]
        if missing:
            raise ValueError(
                f"The weighted objective needs {CLEAN} and {ROBUST} (fit with validation_data and a "
                f"training method that reports robust_accuracy). Missing: {missing}; logs: {sorted(logs)}"
            )
        logs[TRADEOFF] = tradeoff(float(logs[CLEAN]), float(logs[ROBUST]), self.clean_weight)
