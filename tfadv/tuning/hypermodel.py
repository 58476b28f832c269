"""A keras-tuner ``HyperModel`` over a training method's ε_max.

The search space is, in the order the hyperparameters are declared:

- ``eps_max``: ``hp.Float(min, max, step)`` in units of 1/255 (the unit papers
  use: 8 means 8/255), converted to pixel units for the method. The method
  kind declares which setting it is (``MethodKind.tunable``, see
  :data:`tfadv.training.methods.TUNABLE_METHODS`): RobMask samples
  ε = p·ε_max, so the value sets ``method.eps_max``; adversarial training,
  fine-tuning and AdvProp attack at one radius, so it sets
  ``method.attack.eps``.
- ``learning_rate`` (``tune.tune_learning_rate``): ``hp.Float`` with log
  sampling between ``tune.learning_rate_min`` and ``tune.learning_rate_max``.
- ``k`` (``tune.tune_k``, RobMask models only): ``hp.Choice`` over
  ``tune.k_choices``, the number of rows of the masking basis.

Each trial is the experiment config with these values substituted
(:meth:`EpsMaxHyperModel.trial_config`), assembled by the same function as
``tfadv train`` (:func:`tfadv.training.runner.assemble`) and trained for
``tune.epochs`` epochs on the method kind's training stream.

Robust accuracy is measured at one radius for every trial, the threat
model's ``method.attack.eps`` (8/255 by default): the method's own
validation attack would attack each trial at its own ε_max, and accuracies
under attacks of different strengths do not rank models. This is the
question of the RobMask paper, which trains at ε_max = 10/255 to be more
robust at ε = 8/255.
"""

import dataclasses
import os

import keras_tuner

from tfadv.checks import check_integer
from tfadv.training.methods import TUNABLE_METHODS, method_kind
from tfadv.training.runner import assemble, load_split_arrays, steps_per_epoch
from tfadv.tuning.objectives import TradeOffMetric

TUNING_DIRNAME = "tuning"
PIXEL_LEVELS = 255.0  # ε_max hyperparameters are in units of 1/255


def tuning_dir(config):
    """``<output_dir>/<name>/tuning``: where the search of ``config`` lives."""
    return os.path.join(config.output_dir, config.name, TUNING_DIRNAME)


def _check_search_space(config):
    tune, method = config.tune, config.method
    if method.kind not in TUNABLE_METHODS:
        raise ValueError(
            f"Tuning ε_max needs a method trained with an ε: one of {', '.join(TUNABLE_METHODS)}. "
            f"Received: method.kind={method.kind!r}"
        )
    if method_kind(method.kind).tunable.setting == "attack.eps":  # ε_max is the attack's radius
        from tfadv.attacks import ATTACKS

        kind = ATTACKS.get(method.attack.name)
        if kind is None or not (kind.is_linf and kind.can_train):
            usable = [name for name, row in ATTACKS.items() if row.is_linf and row.can_train]
            raise ValueError(
                f"Tuning ε_max needs an L∞ training attack ({' or '.join(usable)}). "
                f"Received: method.attack.name={method.attack.name!r}"
            )
    if not 0 < method.attack.eps <= 1:
        raise ValueError(
            "Robust accuracy is measured at method.attack.eps for every trial; it must be in (0, 1]. "
            f"Received: method.attack.eps={method.attack.eps}"
        )
    if not 0 < tune.eps_max_min <= tune.eps_max_max <= PIXEL_LEVELS:
        raise ValueError(
            "tune.eps_max_min and tune.eps_max_max (units of 1/255) must satisfy "
            f"0 < min <= max <= 255. Received: eps_max_min={tune.eps_max_min}, "
            f"eps_max_max={tune.eps_max_max}"
        )
    if not tune.eps_max_step > 0:
        raise ValueError(f"tune.eps_max_step must be > 0. Received: eps_max_step={tune.eps_max_step}")
    if tune.tune_learning_rate and not 0 < tune.learning_rate_min < tune.learning_rate_max:
        raise ValueError(
            "tune.learning_rate_min and tune.learning_rate_max must satisfy 0 < min < max. "
            f"Received: learning_rate_min={tune.learning_rate_min}, "
            f"learning_rate_max={tune.learning_rate_max}"
        )
    if tune.tune_k:
        if config.model.norm != "robmask":
            raise ValueError(
                "tune.tune_k tunes the RobMask basis size; it needs model.norm 'robmask'. "
                f"Received: model.norm={config.model.norm!r}"
            )
        if not tune.k_choices:
            raise ValueError(f"tune.k_choices must list the basis sizes to try. Received: k_choices={tune.k_choices}")
        for k in tune.k_choices:
            check_integer("tune.k_choices[]", k, minimum=1)


class EpsMaxHyperModel(keras_tuner.HyperModel):
    """Builds and trains one training method per trial, at the trial's ε_max.

    ``build(hp)`` returns the compiled training-method model (a
    ``TrainingMethod`` wrapping the inner model; its ``.inner`` is the model
    to save), whose validation attack is the method's at the fixed radius
    ``method.attack.eps``. ``fit(hp, model, ...)`` runs ``model.fit`` with the tuner's
    data and callbacks, putting :class:`TradeOffMetric` first so that
    ``val_tradeoff`` is in the logs before the tuner's callbacks read them.

    Every build is :func:`~tfadv.training.runner.assemble` of the trial's
    config: it starts from ``config.seed``, so trials differ by their
    hyperparameters only, and makes the layers under
    ``config.train.mixed_precision`` (the global policy is restored after;
    the tuner's ``keras.backend.clear_session()`` before each build resets it
    anyway). ``fit`` trains on the kind's own stream (offline fine-tuning:
    its stored clean+adversarial set, written under ``tuning/method_files/``).

    Args:
        config: the ``ExperimentConfig``; its ``tune`` section defines the
            search space and ``tune.epochs`` the epochs of a trial.
        train_arrays: the training ``(x, y)``; default: loaded from
            ``config.data``. The model's normalization statistics and the
            optimizer's steps per epoch come from them.
    """

    def __init__(self, config, train_arrays=None):
        super().__init__(name="eps_max")
        _check_search_space(config)
        self.config = config
        self.train_arrays = train_arrays if train_arrays is not None else load_split_arrays(config.data, "train")
        self._assembly = None  # the last build's, whose training stream fit uses

    @property
    def steps_per_epoch(self):
        """Optimizer steps per epoch: ``train.steps_per_epoch``, or one pass over the method's examples."""
        return steps_per_epoch(self.config, len(self.train_arrays[0]))

    def trial_config(self, hp):
        """The experiment config of one trial: the base config with ``hp``'s values.

        Declares the hyperparameters in ``hp`` if they are not there yet.
        """
        config, tune = self.config, self.config.tune
        eps = hp.Float("eps_max", tune.eps_max_min, tune.eps_max_max, step=tune.eps_max_step) / PIXEL_LEVELS
        if self.kind.tunable.setting == "eps_max":
            method = dataclasses.replace(config.method, eps_max=eps)
        else:
            method = dataclasses.replace(config.method, attack=dataclasses.replace(config.method.attack, eps=eps))
        train = dataclasses.replace(config.train, epochs=tune.epochs)
        if tune.tune_learning_rate:
            learning_rate = hp.Float("learning_rate", tune.learning_rate_min, tune.learning_rate_max,
                                     sampling="log")
            train = dataclasses.replace(train, learning_rate=learning_rate)
        model = config.model
        if tune.tune_k:
            k = hp.Choice("k", list(tune.k_choices))
            model = dataclasses.replace(model, norm_options={**model.norm_options, "k": k})
        return dataclasses.replace(config, method=method, train=train, model=model)

    @property
    def kind(self):
        """The method kind's protocol (``tfadv.training.methods.MethodKind``)."""
        return method_kind(self.config.method.kind)

    def build(self, hp):
        config = self.trial_config(hp)
        assembly = assemble(config, self.train_arrays, self._method_dir(config))
        trained = assembly.method
        trained.eval_attack = self._evaluation_attack(trained)
        self._assembly = assembly
        return trained

    def fit(self, hp, model, *args, **kwargs):
        callbacks = kwargs.pop("callbacks", None) or []
        if self.config.tune.objective == "weighted":
            callbacks = [TradeOffMetric(self.config.tune.clean_weight), *callbacks]
        assembly = self._assembly
        if assembly is not None and assembly.method is model:  # the kind's own stream of training batches
            args = (assembly.training_dataset(0), *args[1:])
            kwargs.pop("x", None)
        return model.fit(*args, callbacks=callbacks, **kwargs)

    def _evaluation_attack(self, trained):
        """The method's validation attack moved to the fixed radius ``method.attack.eps``,
        its step as the method kind says (``Tunable.validation_step``)."""
        eps = self.config.method.attack.eps
        step_size = self.kind.tunable.validation_step(trained, self.config, eps)
        return dataclasses.replace(trained.eval_attack, eps=eps, step_size=step_size)

    def _method_dir(self, config):
        """Where a method keeps files for this ε: offline fine-tuning's adversarial set.

        Keyed by ε, so trials at the same ε share one set and a resumed
        trial finds the set it started.
        """
        eps = config.method.eps_max if self.kind.tunable.setting == "eps_max" else config.method.attack.eps
        return os.path.join(tuning_dir(self.config), "method_files", f"eps_{round(eps * PIXEL_LEVELS, 4):g}")
