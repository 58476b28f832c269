"""A keras-tuner ``HyperModel`` over a training method's ε_max.

The search space is, in the order the hyperparameters are declared:

- ``eps_max``: ``hp.Float(min, max, step)`` in units of 1/255 (the unit papers
  use: 8 means 8/255), converted to pixel units for the method. RobMask
  samples ε = p·ε_max, so the value sets ``method.eps_max``; adversarial
  training, fine-tuning and AdvProp attack at one radius, so it sets
  ``method.attack.eps``.
- ``learning_rate`` (``tune.tune_learning_rate``): ``hp.Float`` with log
  sampling between ``tune.learning_rate_min`` and ``tune.learning_rate_max``.
- ``k`` (``tune.tune_k``, RobMask models only): ``hp.Choice`` over
  ``tune.k_choices``, the number of rows of the masking basis.

Each trial is the experiment config with these values substituted
(:meth:`EpsMaxHyperModel.trial_config`), built exactly as ``tfadv train``
builds it and trained for ``tune.epochs`` epochs.

Robust accuracy is measured at one radius for every trial, the threat
model's ``method.attack.eps`` (8/255 by default): the method's own
validation attack would attack each trial at its own ε_max, and accuracies
under attacks of different strengths do not rank models. This is the
question of the RobMask paper, which trains at ε_max = 10/255 to be more
robust at ε = 8/255.
"""

import dataclasses
import os

import keras
import keras_tuner

from tfadv.checks import check_integer

from tfadv.training.optimizers import make_optimizer
from tfadv.training.runner import build_inner_model, load_split_arrays, wrap_for_method
from tfadv.tuning.objectives import TradeOffMetric

TUNING_DIRNAME = "tuning"
PIXEL_LEVELS = 255.0  # ε_max hyperparameters are in units of 1/255

# Methods whose training depends on ε. ``standard`` has none; ``bn_finetune``
# uses its attack only to report robust accuracy, so ε would change the
# measurement, not the model.
TUNABLE_METHODS = ("adversarial", "finetune", "advprop", "robmask")


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
    if method.kind != "robmask":
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

    Every build starts from ``config.seed``, so trials differ by their
    hyperparameters only, and re-applies ``config.train.mixed_precision``:
    the tuner calls ``keras.backend.clear_session()`` before each build,
    which resets the global dtype policy to float32.

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

    @property
    def steps_per_epoch(self):
        """Optimizer steps per epoch: ``train.steps_per_epoch``, or one pass over the training set."""
        examples = len(self.train_arrays[0])
        return self.config.train.steps_per_epoch or max(1, examples // self.config.data.batch_size)

    def trial_config(self, hp):
        """The experiment config of one trial: the base config with ``hp``'s values.

        Declares the hyperparameters in ``hp`` if they are not there yet.
        """
        config, tune = self.config, self.config.tune
        eps = hp.Float("eps_max", tune.eps_max_min, tune.eps_max_max, step=tune.eps_max_step) / PIXEL_LEVELS
        if config.method.kind == "robmask":
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

    def build(self, hp):
        config = self.trial_config(hp)
        keras.mixed_precision.set_global_policy(config.train.mixed_precision)
        keras.utils.set_random_seed(config.seed)
        x, y = self.train_arrays
        inner = build_inner_model(config, x, y)
        trained = wrap_for_method(inner, config, train_arrays=(x, y), run_dir=self._method_dir(config))
        trained.eval_attack = self._evaluation_attack(trained)
        trained.compile(optimizer=make_optimizer(config.train, self.steps_per_epoch),
                        jit_compile=config.train.jit_compile)
        # With its slots built, the optimizer state saved in the best-epoch checkpoint loads back too.
        trained.optimizer.build(trained.trainable_variables)
        return trained

    def fit(self, hp, model, *args, **kwargs):
        callbacks = kwargs.pop("callbacks", None) or []
        if self.config.tune.objective == "weighted":
            callbacks = [TradeOffMetric(self.config.tune.clean_weight), *callbacks]
        training_dataset = getattr(model, "training_dataset", None)
        if training_dataset is not None:  # offline fine-tuning trains on its stored clean+adversarial set
            args = (training_dataset(self.config.data.batch_size, self.config.seed), *args[1:])
            kwargs.pop("x", None)
        return model.fit(*args, callbacks=callbacks, **kwargs)

    def _evaluation_attack(self, trained):
        """The method's validation attack moved to the fixed radius ``method.attack.eps``.

        RobMask's PGD step stays the same fraction of ε; other methods keep
        the configured step (``eps / 4`` when unset).
        """
        eps = self.config.method.attack.eps
        if self.config.method.kind == "robmask":
            step_size = trained.step_fraction * eps
        else:  # the spec holds the step resolved for the trial's ε: take the configured one
            step_size = self.config.method.attack.step_size
        return dataclasses.replace(trained.eval_attack, eps=eps, step_size=step_size)

    def _method_dir(self, config):
        """Where a method keeps files for this ε: offline fine-tuning's adversarial set.

        Keyed by ε, so trials at the same ε share one set and a resumed
        trial finds the set it started.
        """
        eps = config.method.eps_max if config.method.kind == "robmask" else config.method.attack.eps
        return os.path.join(tuning_dir(self.config), "method_files", f"eps_{round(eps * PIXEL_LEVELS, 4):g}")
