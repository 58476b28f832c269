"""Training methods as ``keras.Model`` wrappers: ``fit``, ``evaluate``, callbacks just work.

``wrap(inner, method, **settings)`` returns the model to compile and fit;
the inner model is the one to save. :data:`METHODS_BY_KIND` is the one table
of methods: each kind's Python API (a class, or a small function) and how a
config's ``method`` section builds it. Methods and their settings:

- ``"standard"`` (:func:`standard`): no settings; returns ``inner`` itself
  (Keras' own step), for plain models only.
- ``"adversarial"`` (:class:`AdversarialTraining`, Madry et al.):
  ``attack`` (a ``tfadv.attacks.AttackSpec`` or its settings: an attack that
  ``can_train``, fgsm | pgd | stadv; default PGD-10 at 8/255),
  ``adversarial_fraction`` (share of each batch attacked, (0, 1], default 1).
- ``"finetune"`` (:func:`finetune`, the loss-landscape paper): ``attack``;
  ``online`` (False: fine-tune on a stored 1:1 clean+adversarial set,
  :class:`OfflineFineTuning`; True: every clean batch with its fresh
  adversarial copy, 2B images per step); ``adversarial_examples`` (offline: path of the ``.h5`` set,
  written beforehand by :func:`generate_adversarial_examples`);
  ``train_arrays`` (offline: the clean ``(x, y)``).
- ``"advprop"`` (:class:`AdvProp`, Xie et al. 2020): ``attack``;
  ``random_strength`` (ε = p·``eps_max`` per batch), ``eps_max``, ``seed``;
  ``aux_eps`` (one auxiliary BN per strength); ``inner`` built with
  ``norm="dual_bn"`` (``norm_options={"branches": len(aux_eps) + 1}``).
- ``"robmask"`` (:class:`RobMask`, Algorithm 1): ``eps_max`` (8/255),
  ``steps`` (7), ``step_fraction`` (PGD step / ε, 0.2), ``random_start``
  (True), ``learning_rate_multipliers`` ({basis, shift, network}),
  ``strength`` (None: p ~ U(0, 1)), ``seed``; ``inner`` built with
  ``norm="robmask"``.
- ``"bn_finetune"`` (:class:`BNFineTuning`): ``attack`` (for the
  robust-accuracy metric), ``freeze_statistics`` (False: BN moving
  statistics updated, as the paper), ``train_on`` (``"clean"`` or
  ``"adversarial"``: the attack's examples, Table 1); then :func:`interpolation_model` builds the
  p-knob model from the robust model and its BN-only fine-tuning.

Building a method writes nothing. Offline fine-tuning's stored set is an
explicit step before it: :func:`generate_adversarial_examples` (Python) or
:func:`prepare_stored_set` (a config; ``tfadv train`` calls it).

Every method logs ``loss``, ``accuracy`` (clean) and ``robust_accuracy``
(its attack) for training and validation; see each class.
"""

import dataclasses
import os
from typing import Callable

from tfadv.attacks import AttackSpec
from tfadv.models.conditioning import is_conditioned
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
    read_adversarial_examples,
    stored_set_ssim_distance,
)
from tfadv.training.methods.interpolation import interpolation_model
from tfadv.training.methods.robmask import RobMask

ADVERSARIAL_EXAMPLES_FILE = "adversarial_examples.h5"
GENERATION_CHUNK = 500  # images attacked per call while writing the stored set


def _reject_unknown(method, unknown):
    if unknown:
        raise ValueError(f"Unknown setting(s) {sorted(unknown)} for method {method!r}.")


# ------------------------------------------------------------------ Python API


def standard(inner, **unknown):
    """Keras' own ``train_step``: ``inner`` itself, which must be a plain model."""
    _reject_unknown("standard", unknown)
    if is_conditioned(inner):
        raise ValueError(
            "method 'standard' trains plain models; a conditioned model (norm dual_bn or robmask) "
            f"trains with advprop or robmask. Received: inner={inner.name!r}"
        )
    return inner


def finetune(inner, attack=DEFAULT_ATTACK, online=False, adversarial_examples=None,
             train_arrays=None, **unknown):
    """The loss-landscape paper's fine-tuning of a pretrained plain model.

    Online: :class:`AdversarialTraining` with ``paired=True``: each step
    trains on the clean batch and the adversarial versions of the same
    images, crafted against the current model (the released code's 1:1).
    Offline: :class:`OfflineFineTuning` on ``train_arrays`` and the stored set
    at ``adversarial_examples``, written beforehand by
    :func:`generate_adversarial_examples` with the same model, data and
    attack (checked).
    """
    _reject_unknown("finetune", unknown)
    if online:
        return AdversarialTraining(inner, attack, paired=True)
    if adversarial_examples is None or train_arrays is None:
        raise ValueError(
            "Offline fine-tuning needs adversarial_examples (an .h5 path) and train_arrays (x, y). "
            f"Received: adversarial_examples={adversarial_examples!r}, "
            f"train_arrays={'None' if train_arrays is None else 'given'}"
        )
    x, y = train_arrays
    adversarial_images = read_adversarial_examples(adversarial_examples, inner, x, y, attack)
    method = OfflineFineTuning(inner, attack, x, y, adversarial_images)
    # Paper 1's Table 2 population, for the run's summary.json (tfadv eval shows it).
    method.run_summary = {STORED_SET_SUMMARY_KEY: stored_set_ssim_distance(adversarial_examples, x, y)}
    return method


# ------------------------------------------------------------------ from a config


def _attack(config):
    return training_attack(config.method.attack)


def _stored_set_path(config, run_dir):
    if run_dir is None:
        raise ValueError("Offline fine-tuning stores its adversarial set in the run folder. Received: run_dir=None")
    return os.path.join(run_dir, ADVERSARIAL_EXAMPLES_FILE)


def _standard_from_config(inner, config, train_arrays, run_dir):
    return standard(inner)


def _adversarial_from_config(inner, config, train_arrays, run_dir):
    return AdversarialTraining(inner, _attack(config), adversarial_fraction=config.method.adversarial_fraction)


def _finetune_from_config(inner, config, train_arrays, run_dir):
    if not config.model.init_from:
        raise ValueError(
            "method.kind 'finetune' starts from a pretrained model: set model.init_from. "
            f"Received: model.init_from={config.model.init_from!r}"
        )
    if config.method.online:
        return finetune(inner, _attack(config), online=True)
    return finetune(inner, _attack(config), adversarial_examples=_stored_set_path(config, run_dir),
                    train_arrays=train_arrays)


def _advprop_from_config(inner, config, train_arrays, run_dir):
    method = config.method
    variants = ({"random_strength": True, "eps_max": method.eps_max, "seed": config.seed}
                if method.random_strength else {})
    if method.aux_eps:
        variants["aux_eps"] = method.aux_eps
    return AdvProp(inner, _attack(config), **variants)


def _robmask_from_config(inner, config, train_arrays, run_dir):
    """PGD-``method.pgd_steps`` at ε = p·``eps_max``; the step keeps the attack section's
    step/ε ratio (``step_fraction = step_size / attack.eps``, as ``AttackSpec.run`` scales a
    replaced ε), RobMask's ε/5 when unset. So paper 2's base.yaml (ε 8/255, step 1.6/255)
    steps ε/5 at every drawn ε, whatever ``eps_max``."""
    method = config.method
    settings = {}
    if method.attack.step_size is not None:
        settings["step_fraction"] = method.attack.step_size / (method.attack.eps or method.eps_max)
    if method.attack.random_start is not None:
        settings["random_start"] = method.attack.random_start
    return RobMask(inner, eps_max=method.eps_max, steps=method.pgd_steps,
                   learning_rate_multipliers=method.learning_rate_multipliers, seed=config.seed, **settings)


def _bn_finetune_from_config(inner, config, train_arrays, run_dir):
    """With ``method.robust_model``, ``inner`` first takes that model's weights."""
    if config.method.robust_model:
        from tfadv.training.runs import load_model

        inner.set_weights(load_model(config.method.robust_model).get_weights())
    return BNFineTuning(inner, _attack(config), freeze_statistics=config.method.freeze_statistics,
                        train_on=config.method.train_on)


@dataclasses.dataclass(frozen=True)
class MethodKind:
    """One training method: its Python API and how a config builds it.

    Attributes:
        build: ``build(inner, **settings)``, the class (or function) users call.
        from_config: ``from_config(inner, config, train_arrays, run_dir)`` ->
            the method for an ``ExperimentConfig``'s ``method`` section.
    """

    build: Callable
    from_config: Callable


METHODS_BY_KIND = {
    "standard": MethodKind(standard, _standard_from_config),
    "adversarial": MethodKind(AdversarialTraining, _adversarial_from_config),
    "finetune": MethodKind(finetune, _finetune_from_config),
    "advprop": MethodKind(AdvProp, _advprop_from_config),
    "robmask": MethodKind(RobMask, _robmask_from_config),
    "bn_finetune": MethodKind(BNFineTuning, _bn_finetune_from_config),
}
"""Every training method by kind (``method.kind`` in a config)."""

METHOD_KINDS = tuple(METHODS_BY_KIND)
METHODS = METHOD_KINDS  # the former name


def _method(kind, name="method"):
    if kind not in METHODS_BY_KIND:
        raise ValueError(f"{name} must be one of {METHOD_KINDS}. Received: {name}={kind!r}")
    return METHODS_BY_KIND[kind]


def wrap(inner, method, **settings):
    """The ``keras.Model`` whose ``train_step`` implements ``method`` on ``inner``.

    Args:
        inner: the model to train (plain, or conditioned for advprop/robmask).
        method: one of :data:`METHOD_KINDS`.
        **settings: the method's settings (module docstring).

    Returns:
        ``inner`` for ``"standard"``, else a :class:`TrainingMethod` wrapping it.
    """
    return _method(method).build(inner, **settings)


def wrap_from_config(inner, config, train_arrays=None, run_dir=None):
    """The method of an ``ExperimentConfig`` (``tfadv train``), built without side effects.

    ``method.attack`` is the training attack. Offline fine-tuning reads its
    stored set from ``<run_dir>/adversarial_examples.h5``, written first by
    :func:`prepare_stored_set`, and needs ``model.init_from`` (the pretrained
    model). RobMask: see ``_robmask_from_config``. ``bn_finetune`` with
    ``method.robust_model`` copies that model's weights into ``inner``.
    """
    return _method(config.method.kind, "method.kind").from_config(inner, config, train_arrays, run_dir)


def prepare_stored_set(inner, config, train_arrays, run_dir, progress=False):
    """Write what a config's method reads before it is built: offline fine-tuning's stored set.

    Attacks ``inner`` (the pretrained model) once per training image and
    stores the result in ``<run_dir>/adversarial_examples.h5`` chunk by
    chunk (XLA if ``train.jit_compile``); an interrupted generation resumes
    where it stopped. Other methods store nothing.

    Returns:
        The path of the stored set, or ``None`` when the method has none.
    """
    method = config.method
    if method.kind != "finetune" or method.online:
        return None
    x, y = train_arrays
    return generate_adversarial_examples(inner, x, y, _attack(config), _stored_set_path(config, run_dir),
                                         GENERATION_CHUNK, config.train.jit_compile, progress=progress)


__all__ = [
    "ADVERSARIAL_EXAMPLES_FILE", "AdvProp", "AdversarialTraining", "AttackSpec", "BNFineTuning",
    "DEFAULT_ATTACK", "METHODS", "METHODS_BY_KIND", "METHOD_KINDS", "MethodKind",
    "OfflineFineTuning", "RobMask", "TRAINING_ATTACKS", "TrainingMethod", "finetune",
    "generate_adversarial_examples", "interpolation_model", "load_adversarial_examples",
    "prepare_stored_set", "read_adversarial_examples", "standard", "stored_set_ssim_distance",
    "training_attack", "wrap", "wrap_from_config",
]
