"""The callbacks that make a run resumable: per-epoch checkpoints and ``history.csv``.

``EpochCheckpoint`` saves model and optimizer state after every epoch through
``tf.train.CheckpointManager`` (the data is written before the index that names
it, so a kill mid-save leaves the previous checkpoint intact). Running the same
command again restores the last completed epoch and continues from there.
"""
import csv
import os
import warnings

import keras
import tensorflow as tf

from tfadv._files import atomic_path


class EpochCheckpoint(keras.callbacks.Callback):
    """Save weights, optimizer state and the epoch counter after every epoch."""

    def __init__(self, directory, trackables, max_to_keep=2):
        super().__init__()
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="completed_epochs")
        self.checkpoint = tf.train.Checkpoint(epoch=self.epoch, **trackables)
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=max_to_keep)

    def restore(self):
        """Restore the latest readable checkpoint; return the number of completed epochs (0 if none).

        A damaged checkpoint (truncated or corrupted: TensorFlow checks every
        tensor's CRC32C) is skipped with a warning for the one before it, and
        the epochs after that are trained again; if none can be read, the
        error names the files and what to do.
        """
        damaged = []
        for path in reversed(self.manager.checkpoints):
            try:
                self.checkpoint.restore(path).expect_partial()
            except Exception as error:  # noqa: BLE001  (truncation raises IndexError, OpError, ValueError…)
                damaged.append(f"{path} ({type(error).__name__}: {str(error).splitlines()[0][:200]})")
                continue
            if damaged:
                warnings.warn(f"Damaged checkpoint(s) {'; '.join(damaged)}: resuming from {path} "
                              f"(epoch {int(self.epoch.numpy())}) and training the later epochs again.",
                              stacklevel=2)
            return int(self.epoch.numpy())
        if damaged:
            raise ValueError(
                f"No readable checkpoint in {self.manager.directory}: {'; '.join(damaged)}. Delete the "
                "checkpoints folder (or the whole run folder, or pass --overwrite) to train from the start.")
        return 0

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)


class HistoryCSV(keras.callbacks.Callback):
    """Append one row per epoch to ``history.csv``, flushed at once.

    Rows of epochs that a resumed run repeats are replaced, so the file always
    holds exactly one row per completed epoch.
    """

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1}
        row.update({k: float(v) for k, v in (logs or {}).items()})
        rows = [r for r in read_history(self.path) if int(float(r["epoch"])) < epoch + 1]
        rows.append(row)
        fields = list(dict.fromkeys(k for r in rows for k in r))
        with atomic_path(self.path) as temporary, open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)


def read_history(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
