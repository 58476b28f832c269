"""The callbacks of a run: resumable checkpoints, ``history.csv``, the most robust epoch.

``EpochCheckpoint`` saves model and optimizer state after every epoch through
``tf.train.CheckpointManager`` (the data is written before the index that names
it, so a kill mid-save leaves the previous checkpoint intact). Running the same
command again restores the last completed epoch and continues from there.

``RobustValidation`` measures robust accuracy under a separate, stronger
attack (``train.validation_attack``) and keeps the model of the most robust
epoch beside the last one (``train.keep_best: robust``).
"""
import csv
import json
import os
import warnings

import keras
import numpy as np
import tensorflow as tf

from tfadv._files import atomic_path, atomic_write_json


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


BEST_MODEL = "model_best.keras"
BEST_RECORD = "best.json"
STRONG_METRIC = "val_strong_robust_accuracy"


class RobustValidation(keras.callbacks.Callback):
    """Robust accuracy under a stronger validation attack, and the most robust epoch kept.

    Robust overfitting (Rice, Wong and Kolter, "Overfitting in adversarially
    robust deep learning", ICML 2020) makes the last epoch rarely the most
    robust one, and a training attack (PGD-7, or RobMask's p·ε_max) is weaker
    than an evaluation attack. After every ``every``-th epoch (and the last)
    this callback

    - with ``attack``: attacks the first ``examples`` validation examples with
      it and adds ``val_strong_robust_accuracy`` to the epoch's logs (so
      ``history.csv``, TensorBoard and later callbacks see it; put it before
      them in the callback list);
    - with ``keep_best``: saves the model whose robust accuracy (the strong
      attack's, else the method's own ``val_robust_accuracy``) is the best so
      far as ``model_best.keras`` in ``directory`` and records the epoch in
      ``best.json``. A resumed run reads ``best.json`` back, so the choice
      survives interruption.

    **Cost.** One attack of ``steps`` iterations costs about ``steps + 1``
    forward and backward passes per example: PGD-10 on 1,000 examples every
    epoch is ≈ 11,000 passes, against ≈ 8 × 50,000 = 400,000 for one CIFAR
    epoch of PGD-7 adversarial training (≈ 3 %), and against 50,000 for a
    clean epoch (≈ 22 %). ``examples`` and ``every`` bound it; ``tfadv bench
    train`` measures it. Saving the best model costs one ``.keras`` write per
    improvement.

    It works under plain ``fit`` and under any loop that calls the standard
    Keras hooks (``on_train_begin``, ``on_epoch_end`` with a logs dict).

    Args:
        validation: ``(x, y)`` validation arrays (images in [0, 1]).
        attack: an ``AttackSpec`` (or anything ``AttackSpec.create`` or
            ``attack_from_text`` reads), or None for no strong validation.
        examples: attack the first this many validation examples.
        every: attack after every ``every``-th epoch (and the last one).
        keep_best: ``None`` or ``"robust"``.
        directory: where ``model_best.keras`` and ``best.json`` go (keep_best).
        model: the model to attack and save; default the training model's
            ``inner`` model (tfadv's methods) or the training model itself.
        p: the strength a conditioned model is attacked at; default the
            method's ``eval_attack_condition`` (its robust end), else 1.0.
        batch_size: attack batch size.
    """

    def __init__(self, validation, attack=None, examples=1000, every=1, keep_best=None,
                 directory=None, model=None, p=None, batch_size=128):
        super().__init__()
        from tfadv.attacks.spec import AttackSpec, attack_from_text
        from tfadv.checks import check_integer

        if attack is not None:
            attack = attack_from_text(attack) if isinstance(attack, str) else AttackSpec.create(attack)
        if keep_best not in (None, "robust"):
            raise ValueError(f"keep_best must be None or 'robust'. Received: keep_best={keep_best!r}")
        if keep_best and directory is None:
            raise ValueError("keep_best needs the directory to save model_best.keras in. "
                             "Received: directory=None")
        self.attack = attack
        self.examples = check_integer("examples", examples, minimum=1)
        self.every = check_integer("every", every, minimum=1)
        self.batch_size = check_integer("batch_size", batch_size, minimum=1)
        self.keep_best = keep_best
        self.directory = directory
        self.target = model
        self.p = p
        x, y = validation
        self.x, self.y = np.asarray(x)[: self.examples], np.asarray(y).reshape(-1)[: self.examples]
        self.best = None  # {"epoch", "value", "metric"} of the best epoch so far

    def _record_path(self):
        return os.path.join(self.directory, BEST_RECORD)

    def _inner(self):
        return self.target if self.target is not None else getattr(self.model, "inner", self.model)

    def on_train_begin(self, logs=None):
        if self.keep_best and os.path.exists(self._record_path()):
            with open(self._record_path(), encoding="utf-8") as handle:
                self.best = json.load(handle)

    def strong_robust_accuracy(self):
        """Accuracy of the model on ``attack``'s examples of the first ``examples`` validation images."""
        from tfadv.models import bind, call_model, is_conditioned

        inner = self._inner()
        p = self.p
        if p is None:
            p = getattr(self.model, "eval_attack_condition", 1.0) if is_conditioned(inner) else 0.0
        model_fn = bind(inner, p)
        correct = 0
        for index, start in enumerate(range(0, len(self.x), self.batch_size)):
            x = tf.convert_to_tensor(self.x[start:start + self.batch_size], tf.float32)
            y = tf.convert_to_tensor(self.y[start:start + self.batch_size], tf.int64)
            x_adv = self.attack.run(model_fn, x, y, batch_index=index)
            logits = call_model(inner, x_adv, p, training=False)
            correct += int(np.sum(np.argmax(np.asarray(logits), axis=-1) == self.y[start:start + len(x)]))
        return correct / len(self.x)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        last = self.params.get("epochs") if self.params else None
        if (epoch + 1) % self.every and (last is None or epoch + 1 != last):
            return
        if self.attack is not None:
            logs[STRONG_METRIC] = self.strong_robust_accuracy()
        if not self.keep_best:
            return
        metric = STRONG_METRIC if self.attack is not None else "val_robust_accuracy"
        if metric not in logs:
            raise ValueError(f"keep_best='robust' needs {metric} in the epoch's logs (a training method "
                             f"with an attack, or train.validation_attack). Received: logs={sorted(logs)}")
        value = float(logs[metric])
        if self.best is None or value > self.best["value"]:
            from tfadv.training.runs import save_model_atomically

            save_model_atomically(self._inner(), os.path.join(self.directory, BEST_MODEL))
            self.best = {"epoch": epoch + 1, "value": value, "metric": metric,
                         "attack": None if self.attack is None else self.attack.label}
            atomic_write_json(self._record_path(), self.best)


def robust_validation_from_config(config, validation, directory):
    """The :class:`RobustValidation` a ``TrainConfig`` asks for (a list of zero or one callback)."""
    train = config.train
    if train.validation_attack is None and train.keep_best is None:
        return []
    return [RobustValidation(validation, attack=train.validation_attack,
                             examples=train.validation_examples, every=train.validation_every,
                             keep_best=train.keep_best, directory=directory,
                             batch_size=config.data.batch_size)]
