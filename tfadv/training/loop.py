"""The training loop of ``train.distribute: mirrored`` and ``multi_worker``, on public ``tf.distribute`` API.

Single-device training runs ``model.fit``. Under a ``tf.distribute``
strategy, :func:`fit_distributed` runs the same epochs itself, with the
public API only:

- the training and validation datasets go through
  ``strategy.experimental_distribute_dataset`` (each replica gets its share
  of every global batch);
- one step is one ``tf.function`` (XLA when the model was compiled with
  ``jit_compile``) whose body is ``strategy.run(model.train_step, (batch,))``:
  every training method owns its ``train_step`` (attack, loss, update), and
  the optimizer all-reduces the gradients across replicas and workers;
- the per-step logs (the progress bar, :class:`~tfadv.training.divergence.StopOnDivergence`)
  are the replicas' metric values averaged with ``strategy.reduce("MEAN", ...)``;
  the epoch logs (``history.csv``, TensorBoard) are ``model.get_metrics_result()``
  read outside the replicas, which sums every replica's metric state, the
  numbers ``fit`` reports;
- validation is ``strategy.run(model.test_step, ...)`` over the validation
  set after every epoch, logged with the ``val_`` prefix;
- the callbacks are a ``keras.callbacks.CallbackList`` (with ``History`` and,
  unless ``verbose`` is 0, the progress bar), called at the points ``fit``
  calls them, so ``HistoryCSV``, ``EpochCheckpoint`` (a
  ``tf.train.CheckpointManager``), ``TensorBoard`` and users' callbacks work
  unchanged, and ``model.stop_training`` stops the loop.

The stream of batches is the one ``fit`` would take (one iterator over the
repeated training set, kept across epochs), so the results equal a ``fit``
of the same model under the same strategy.
"""
import keras
import tensorflow as tf

VALIDATION_PREFIX = "val_"


def _mean_over_replicas(strategy, outputs):
    """Every per-replica scalar of ``outputs`` averaged over all replicas of all workers."""
    return {name: strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
            for name, value in outputs.items()}


def _distributed_function(model, strategy, step):
    """``batch -> mean logs``: one ``tf.function`` around ``strategy.run(step, (batch,))``."""

    def run(batch):
        return _mean_over_replicas(strategy, strategy.run(step, args=(batch,)))

    return tf.function(run, jit_compile=bool(model.jit_compile), reduce_retracing=True)


def _python_logs(logs):
    return {name: float(value) for name, value in logs.items()}


def fit_distributed(model, strategy, dataset, epochs, steps_per_epoch, validation_data=None,
                    initial_epoch=0, callbacks=(), verbose=0):
    """Train ``model`` (compiled under ``strategy.scope()``) as ``model.fit`` would, under ``strategy``.

    Args:
        model: a compiled ``keras.Model`` (a training method, or a plain model
            with Keras' own ``train_step``), created under ``strategy.scope()``.
        strategy: the ``tf.distribute.Strategy``.
        dataset: the repeated training ``tf.data.Dataset`` of global batches.
        epochs: train until this epoch (counted from 0, as ``fit``'s ``epochs``).
        steps_per_epoch: steps of each epoch.
        validation_data: a finite ``tf.data.Dataset`` evaluated after every
            epoch (logs prefixed ``val_``), or None.
        initial_epoch: the first epoch to run (a resumed run).
        callbacks: Keras callbacks.
        verbose: 0 silent, 1 progress bar, 2 one line per epoch (as ``fit``).

    Returns:
        The ``keras.callbacks.History`` of this call.
    """
    callback_list = keras.callbacks.CallbackList(
        list(callbacks), add_history=True, add_progbar=verbose != 0, model=model,
        verbose=verbose, epochs=epochs, steps=steps_per_epoch)
    train_step = _distributed_function(model, strategy, model.train_step)
    test_step = _distributed_function(model, strategy, model.test_step)
    batches = iter(strategy.experimental_distribute_dataset(dataset))
    validation = (None if validation_data is None
                  else strategy.experimental_distribute_dataset(validation_data))

    model.stop_training = False
    callback_list.on_train_begin()
    epoch_logs = {}
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        callback_list.on_epoch_begin(epoch)
        for step in range(steps_per_epoch):
            callback_list.on_train_batch_begin(step)
            logs = _python_logs(train_step(next(batches)))
            callback_list.on_train_batch_end(step, logs)
            if model.stop_training:
                break
        # Outside the replicas: every replica's metric state summed (a collective across workers).
        epoch_logs = _python_logs(model.get_metrics_result())
        if validation is not None:
            epoch_logs.update({VALIDATION_PREFIX + name: value for name, value in
                               evaluate_distributed(model, test_step, validation, callback_list).items()})
        callback_list.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:
            break
    if epochs > initial_epoch:  # as fit: e.g. an optimizer's moving average written into the weights
        model.optimizer.finalize_variable_values(model.trainable_weights)
    callback_list.on_train_end(epoch_logs)
    return model.history


def evaluate_distributed(model, test_step, dataset, callback_list):
    """Metrics of ``model.test_step`` over the distributed ``dataset`` (``fit``'s validation)."""
    model.reset_metrics()
    callback_list.on_test_begin()
    for step, batch in enumerate(dataset):
        callback_list.on_test_batch_begin(step)
        callback_list.on_test_batch_end(step, _python_logs(test_step(batch)))
    logs = _python_logs(model.get_metrics_result())
    callback_list.on_test_end(logs)
    return logs
