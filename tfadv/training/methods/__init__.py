"""Training methods as ``keras.Model`` wrappers: ``fit``, ``evaluate``, callbacks just work.

``wrap(inner, method, **settings)`` returns the model to compile and fit;
the inner model is the one to save. Methods and their settings:

- ``"standard"``: no settings; returns ``inner`` itself (Keras' own step).
- ``"adversarial"`` (:class:`AdversarialTraining`, Madry et al.):
  ``attack`` (a ``tfadv.attacks.AttackSpec`` or its settings: ``name``
  fgsm | pgd | stadv, ``eps``, ``step_size``, ``steps``, ``random_start``,
  stadv's ``tau``, ``learning_rate``, ``kappa``, ``flow_bound``, ``flow_bound_unit``; default
  PGD-10 at 8/255), ``adversarial_fraction``
  (share of each batch attacked, (0, 1], default 1).
- ``"finetune"`` (the loss-landscape paper): ``attack``; ``online`` (False:
  fine-tune on a stored 1:1 clean+adversarial set, :class:`OfflineFineTuning`;
  True: fresh adversarial examples for half of every batch);
  ``adversarial_examples`` (offline: path of the ``.h5`` set, generated from
  ``inner`` with :func:`generate_adversarial_examples` if missing or
  incomplete); ``train_arrays`` (offline: the clean ``(x, y)``);
  ``chunk_size`` (generation chunk, 500); ``jit_compile`` (XLA for the
  generation, True).
- ``"advprop"`` (:class:`AdvProp`, Xie et al. 2020): ``attack``; ``inner``
  built with ``norm="dual_bn"``.
- ``"robmask"`` (:class:`RobMask`, Algorithm 1): ``eps_max`` (8/255),
  ``steps`` (7), ``step_fraction`` (PGD step / ε, 0.2), ``random_start``
  (True), ``learning_rate_multipliers`` ({basis, shift, network}),
  ``strength`` (None: p ~ U(0, 1)), ``seed``; ``inner`` built with
  ``norm="robmask"``.
- ``"bn_finetune"`` (:class:`BNFineTuning`): ``attack`` (for the
  robust-accuracy metric); then :func:`interpolation_model` builds the
  p-knob model from the robust model and its BN-only fine-tuning.

Every method logs ``loss``, ``accuracy`` (clean) and ``robust_accuracy``
(its attack) for training and validation; see each class.
"""

import inspect
import os

from tfadv.attacks import AttackSpec
from tfadv.training.methods._common import (
    DEFAULT_ATTACK,
    TRAINING_ATTACKS,
    TrainingMethod,
    training_attack,
)
from tfadv.training.methods.adversarial import AdversarialTraining
from tfadv.training.methods.advprop import AdvProp
from tfadv.training.methods.bn_finetune import BNFineTuning
from tfadv.training.methods.finetune import (
    OfflineFineTuning,
    STORED_SET_SUMMARY_KEY,
    generate_adversarial_examples,
    load_adversarial_examples,
    stored_set_ssim_distance,
)
from tfadv.training.methods.interpolation import interpolation_model
from tfadv.training.methods.robmask import RobMask

METHODS = ("standard", "adversarial", "finetune", "advprop", "robmask", "bn_finetune")
ONLINE_FINETUNE_FRACTION = 0.5  # 1:1 clean and adversarial, as the stored set
ADVERSARIAL_EXAMPLES_FILE = "adversarial_examples.h5"


def _check_settings(method, settings, allowed):
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise ValueError(
            f"Unknown setting(s) {unknown} for method {method!r}. Available: {sorted(allowed)}"
        )


def _settings_of(cls):
    return [name for name in inspect.signature(cls.__init__).parameters
            if name not in ("self", "inner", "kwargs")]


def _finetune(inner, attack=DEFAULT_ATTACK, online=False, adversarial_examples=None,
              train_arrays=None, chunk_size=500, jit_compile=None):
    if online:
        return AdversarialTraining(inner, attack, adversarial_fraction=ONLINE_FINETUNE_FRACTION)
    if adversarial_examples is None or train_arrays is None:
        raise ValueError(
            "Offline fine-tuning needs adversarial_examples (an .h5 path) and train_arrays (x, y). "
            f"Received: adversarial_examples={adversarial_examples!r}, "
            f"train_arrays={'None' if train_arrays is None else 'given'}"
        )
    x, y = train_arrays
    generate_adversarial_examples(inner, x, y, attack, adversarial_examples, chunk_size, jit_compile)
    adversarial_images, _, _ = load_adversarial_examples(adversarial_examples)
    method = OfflineFineTuning(inner, attack, x, y, adversarial_images)
    # Paper 1's Table 2 population, for the run's summary.json (tfadv eval shows it).
    method.run_summary = {STORED_SET_SUMMARY_KEY: stored_set_ssim_distance(adversarial_examples, x, y)}
    return method


_BUILDERS = {
    "adversarial": AdversarialTraining,
    "finetune": _finetune,
    "advprop": AdvProp,
    "robmask": RobMask,
    "bn_finetune": BNFineTuning,
}


def wrap(inner, method, **settings):
    """The ``keras.Model`` whose ``train_step`` implements ``method`` on ``inner``.

    Args:
        inner: the model to train (plain, or conditioned for advprop/robmask).
        method: one of ``METHODS``.
        **settings: the method's settings (module docstring).

    Returns:
        ``inner`` for ``"standard"``, else a :class:`TrainingMethod` wrapping it.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}. Received: method={method!r}")
    if method == "standard":
        _check_settings(method, settings, ())
        return inner
    builder = _BUILDERS[method]
    allowed = _settings_of(builder) if inspect.isclass(builder) else [
        name for name in inspect.signature(builder).parameters if name != "inner"]
    _check_settings(method, settings, allowed)
    return builder(inner, **settings)


def wrap_from_config(inner, config, train_arrays=None, run_dir=None):
    """``wrap`` with the settings of an ``ExperimentConfig`` (``tfadv train``).

    ``method.attack`` is the training attack; RobMask's PGD step is
    ``attack.step_size`` scaled with ε (``step_fraction = step_size / eps_max``)
    or ε/5 when unset, its steps ``method.pgd_steps``. Offline fine-tuning
    stores its adversarial set in ``<run_dir>/adversarial_examples.h5``
    (generated with XLA if ``train.jit_compile``) and needs
    ``model.init_from`` (the pretrained model). ``bn_finetune`` with
    ``method.robust_model`` copies that model's weights into ``inner``.
    """
    method = config.method
    kind = method.kind
    if kind == "standard":
        return wrap(inner, kind)
    attack = training_attack(method.attack)
    if kind == "adversarial":
        return wrap(inner, kind, attack=attack, adversarial_fraction=method.adversarial_fraction)
    if kind == "finetune":
        if not config.model.init_from:
            raise ValueError(
                "method.kind 'finetune' starts from a pretrained model: set model.init_from. "
                f"Received: model.init_from={config.model.init_from!r}"
            )
        if method.online:
            return wrap(inner, kind, attack=attack, online=True)
        if run_dir is None:
            raise ValueError("Offline fine-tuning stores its adversarial set in the run folder. Received: run_dir=None")
        return wrap(inner, kind, attack=attack, train_arrays=train_arrays,
                    adversarial_examples=os.path.join(run_dir, ADVERSARIAL_EXAMPLES_FILE),
                    jit_compile=config.train.jit_compile)
    if kind == "advprop":
        return wrap(inner, kind, attack=attack)
    if kind == "robmask":
        step_fraction = 0.2 if method.attack.step_size is None else method.attack.step_size / method.eps_max
        return wrap(inner, kind, eps_max=method.eps_max, steps=method.pgd_steps,
                    step_fraction=step_fraction, random_start=method.attack.random_start,
                    learning_rate_multipliers=method.learning_rate_multipliers, seed=config.seed)
    if kind == "bn_finetune":
        if method.robust_model:
            from tfadv.training.runs import load_model

            inner.set_weights(load_model(method.robust_model).get_weights())
        return wrap(inner, kind, attack=attack)
    raise ValueError(f"method.kind must be one of {METHODS}. Received: method.kind={kind!r}")


__all__ = [
    "AdvProp", "AdversarialTraining", "AttackSpec", "BNFineTuning", "DEFAULT_ATTACK", "METHODS",
    "OfflineFineTuning", "RobMask", "TRAINING_ATTACKS", "TrainingMethod",
    "generate_adversarial_examples", "interpolation_model", "load_adversarial_examples",
    "stored_set_ssim_distance", "training_attack", "wrap", "wrap_from_config",
]
