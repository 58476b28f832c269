"""Run folders and crash-safe resume.

A run folder ``runs/<name>/`` holds ``config.yaml``, ``history.csv``,
``tensorboard/``, ``checkpoints/`` and, when training finished, ``model.keras``.
``EpochCheckpoint`` saves model and optimizer state after every epoch through
``tf.train.CheckpointManager`` (the data is written before the index that names
it, so a kill mid-save leaves the previous checkpoint intact). Running the same
command again restores the last completed epoch and continues from there.
"""
import csv
import os
import platform
import warnings

import keras
import tensorflow as tf

import tfadv
from tfadv._files import atomic_path, atomic_write_json, clear_folder
from tfadv.models.io import load_model, resolve_model_path  # noqa: F401  (re-exported)


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


def environment_record():
    """What produced a result, beyond the config: versions and the machine."""
    return {
        "tfadv": tfadv.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "devices": [d.name for d in tf.config.list_logical_devices()],
    }


def write_json(path, data):
    atomic_write_json(path, data, indent=2, default=str)


def runs_table(results, root):
    """A Markdown table of training runs: linked folder, method, epochs, final validation accuracies.

    Args:
        results: ``RunResult``s (``run_dir`` and ``history``).
        root: the folder the report is written in (links are relative to it).
    """
    import yaml

    lines = ["| run | method | epochs | val accuracy (%) | val robust accuracy (%) |", "|---|---|---:|---:|---:|"]
    for result in results:
        with open(os.path.join(result.run_dir, "config.yaml"), encoding="utf-8") as handle:
            method = (yaml.safe_load(handle) or {}).get("method", {}).get("kind", "standard")
        last = result.history[-1] if result.history else {}

        def percent(key):
            value = last.get(key)
            return "–" if value in (None, "") else f"{100 * float(value):.2f}"

        name = os.path.basename(result.run_dir)
        lines.append(f"| [{name}]({os.path.relpath(result.run_dir, root)}) | {method} | "
                     f"{len(result.history)} | {percent('val_accuracy')} | {percent('val_robust_accuracy')} |")
    return "\n".join(lines)


def changed_config_keys(saved, current, free_keys=(), prefix=""):
    """Dotted keys whose values differ between two config mappings, except ``free_keys``."""
    for key in sorted(set(saved) | set(current), key=str):
        old, new = saved.get(key), current.get(key)
        where = f"{prefix}{key}"
        if isinstance(old, dict) and isinstance(new, dict):
            yield from changed_config_keys(old, new, free_keys, where + ".")
        elif old != new and where not in free_keys:
            yield where


def prepare_folder(config, directory, overwrite=False, free_keys=(), what="run"):
    """Create ``directory`` for ``config``, or resume it if it holds the same config.

    With ``overwrite`` an existing folder is deleted first. A folder whose
    ``config.yaml`` differs (beyond ``free_keys``, dotted like ``train.verbose``)
    is refused with a ``ConfigError`` naming the changed keys, so two
    experiments never mix in one folder. The resolved config is written.
    """
    import yaml

    from tfadv.config import ConfigError, save_config, to_dict

    config_path = os.path.join(directory, "config.yaml")
    if overwrite and os.path.isdir(directory):
        clear_folder(directory)  # keeps the lock file of the command that holds the folder
    if os.path.exists(config_path):
        with open(config_path, encoding="utf-8") as handle:
            saved = yaml.safe_load(handle) or {}
        changed = list(changed_config_keys(saved, to_dict(config), free_keys))
        if changed:
            raise ConfigError(
                f"{directory} holds a {what} with a different config ({', '.join(changed)} changed). "
                "Resume with the same config, choose another name, or pass --overwrite."
            )
    os.makedirs(directory, exist_ok=True)
    save_config(config, config_path)
    return directory


def save_model_atomically(model, path):
    """``model.save(path)`` through a temporary file, so ``path`` is complete or absent."""
    with atomic_path(path, suffix=".keras") as temporary:
        model.save(temporary)

