"""Stop a training run the step its loss stops being a finite number.

A learning rate too large for the model sends the loss to NaN or infinity
within a few steps; every step after that only writes NaN into the weights.
:class:`StopOnDivergence` checks the loss Keras reports after every step and
raises :class:`TrainingDiverged`, so ``fit`` stops before the epoch ends:
no checkpoint, ``history.csv`` row or ``model.keras`` is written from the
damaged weights, and the run folder keeps its last good epoch. ``tfadv
train`` prints the message and exits with code 3.
"""
import math
import sys

import keras


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite; the message names the epoch and step."""

    def __init__(self, message, epoch=None, step=None, loss=None):
        super().__init__(message)
        self.epoch, self.step, self.loss = epoch, step, loss


class StopOnDivergence(keras.callbacks.Callback):
    """Raise :class:`TrainingDiverged` after the first step whose reported loss is not finite.

    Keras reports the epoch's running mean of the loss, which turns NaN or
    infinite at the first step whose own loss does, so the check catches
    that step. Epochs and steps in the message count from 1.

    Args:
        last_good_epoch: a callable returning the epochs completed and saved,
            for the message (None: not mentioned).
    """

    def __init__(self, last_good_epoch=None):
        super().__init__()
        self.last_good_epoch = last_good_epoch
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        loss = float(loss)
        if math.isfinite(loss):
            return
        if self.params.get("verbose") == 1:
            # Keras' progress bar ends its line only at the epoch's end: end it here, so the
            # message (printed on stderr by the CLI) starts on its own line.
            sys.stdout.write("\n")
            sys.stdout.flush()
        saved = None if self.last_good_epoch is None else self.last_good_epoch()
        kept = ("" if saved is None else
                f"; the run keeps its last good checkpoint (epoch {saved})" if saved else
                "; no epoch had finished, nothing was saved")
        raise TrainingDiverged(
            f"training diverged: loss is {loss} at epoch {self.epoch + 1}, step {batch + 1}{kept}. "
            "Lower train.learning_rate (or check the data), then run again.",
            epoch=self.epoch + 1, step=batch + 1, loss=loss)
