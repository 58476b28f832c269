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
from typing import Callable, Optional

from tfadv.attacks import AttackSpec
from tfadv.config.schema import METHOD_KINDS
from tfadv.models.conditioning import is_conditioned
from tfadv.training.methods._common import (
    DEFAULT_ATTACK,
    TrainingMethod,
    training_attack,
)
from tfadv.training.methods.adversarial import AdversarialTraining
from tfadv.training.methods.advprop import AdvProp
from tfadv.training.methods.bn_finetune import BNFineTuning
from tfadv.training.methods.finetune import (
    OfflineFineTuning,
    SSIM_RECORD_ATTRIBUTE,
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
    return OfflineFineTuning(inner, attack, x, y, adversarial_images)


# ------------------------------------------------------------------ from a config


@dataclasses.dataclass
class Prepared:
    """What a method kind made ready before training (:attr:`MethodKind.prepare`).

    Attributes:
        train_arrays: the clean training ``(x, y)``.
        stored_set: offline fine-tuning's ``.h5`` stored set (None for other methods).
        adversarial_images: the stored set's images, aligned with ``x``.
        summary: what the run's ``summary.json`` records for the method, e.g.
            offline fine-tuning's stored-set 1 − SSIM (paper 1's Table 2
            population, under :data:`STORED_SET_SUMMARY_KEY`).
    """

    train_arrays: tuple = None
    stored_set: Optional[str] = None
    adversarial_images: object = None
    summary: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Tunable:
    """How ``tfadv tune``'s ε_max reaches a method kind.

    Attributes:
        setting: the config setting ε_max sets: ``"eps_max"`` (``method.eps_max``,
            the range a method samples strengths from) or ``"attack.eps"``
            (``method.attack.eps``, the one radius it trains at; the attack
            must then be an L∞ training attack).
        validation_step: ``validation_step(method, config, eps)``: the PGD step
            of the method's validation attack moved to the fixed radius ``eps``
            at which every trial's robust accuracy is measured.
    """

    setting: str
    validation_step: Callable


def _attack(config):
    return training_attack(config.method.attack)


def _stored_set_path(config, folder):
    if folder is None:
        raise ValueError("Offline fine-tuning stores its adversarial set in the run folder. Received: run_dir=None")
    return os.path.join(folder, ADVERSARIAL_EXAMPLES_FILE)


def _offline(config):
    return config.method.kind == "finetune" and not config.method.online


# -- prepare(inner, config, train_arrays, folder, progress=False, wait=None) -> Prepared


def _nothing_to_prepare(inner, config, train_arrays, folder, progress=False, wait=None):
    return Prepared(train_arrays)


def _stored_set_state(path, inner, x, y, attack):
    """``(done, examples written)`` of the chief's stored set, read without taking the file's lock.

    Done means complete, made from ``inner``, ``(x, y)`` and ``attack``, and
    its 1 − SSIM record written: the chief's last write to the file, so
    reading it in full after that never blocks the chief's writer.
    """
    import h5py

    try:
        with h5py.File(path, "r", locking=False) as handle:
            attributes = dict(handle.attrs)
            total = int(handle["labels"].shape[0])
    except (OSError, KeyError, ValueError, RuntimeError):  # not there yet, or caught mid-write
        return False, None
    completed = int(attributes.get("completed", -1))
    if completed != total or SSIM_RECORD_ATTRIBUTE not in attributes:
        return False, (completed, SSIM_RECORD_ATTRIBUTE in attributes)
    try:
        read_adversarial_examples(path, inner, x, y, attack)
    except (OSError, ValueError):
        return False, (completed, True)
    return True, (completed, True)


def _prepare_finetune(inner, config, train_arrays, folder, progress=False, wait=None):
    """Offline: write the stored set in ``folder`` (resumable) and measure its 1 − SSIM once.

    ``wait`` (a non-chief worker of a cluster): instead of writing, wait for
    the chief's set with ``wait(ready, what)`` and read it; the chief records
    the summary.
    """
    if not _offline(config):
        return Prepared(train_arrays)
    x, y = train_arrays
    attack = _attack(config)
    path = _stored_set_path(config, folder)
    if wait is None:
        generate_adversarial_examples(inner, x, y, attack, path, GENERATION_CHUNK, config.train.jit_compile,
                                      progress=progress)
        summary = {STORED_SET_SUMMARY_KEY: stored_set_ssim_distance(path, x, y)}
    else:
        wait(lambda: _stored_set_state(path, inner, x, y, attack), f"the stored adversarial set {path}")
        summary = {}
    return Prepared(train_arrays, stored_set=path,
                    adversarial_images=read_adversarial_examples(path, inner, x, y, attack), summary=summary)


# -- from_config(inner, config, prepared) -> the method, built without reading or writing files


def _standard_from_config(inner, config, prepared):
    return standard(inner)


def _adversarial_from_config(inner, config, prepared):
    return AdversarialTraining(inner, _attack(config), adversarial_fraction=config.method.adversarial_fraction)


def _finetune_from_config(inner, config, prepared):
    if not config.model.init_from:
        raise ValueError(
            "method.kind 'finetune' starts from a pretrained model: set model.init_from. "
            f"Received: model.init_from={config.model.init_from!r}"
        )
    if config.method.online:
        return finetune(inner, _attack(config), online=True)
    if prepared is None or prepared.adversarial_images is None:
        raise ValueError("Offline fine-tuning trains on its stored adversarial set: prepare it first "
                         "(MethodKind.prepare, or generate_adversarial_examples). Received: no stored set")
    x, y = prepared.train_arrays
    return OfflineFineTuning(inner, _attack(config), x, y, prepared.adversarial_images)


def _advprop_from_config(inner, config, prepared):
    method = config.method
    variants = ({"random_strength": True, "eps_max": method.eps_max, "seed": config.seed}
                if method.random_strength else {})
    if method.aux_eps:
        variants["aux_eps"] = method.aux_eps
    return AdvProp(inner, _attack(config), **variants)


def _robmask_from_config(inner, config, prepared):
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


def _bn_finetune_from_config(inner, config, prepared):
    """With ``method.robust_model``, ``inner`` first takes that model's weights."""
    if config.method.robust_model:
        from tfadv.models.io import load_model

        inner.set_weights(load_model(config.method.robust_model).get_weights())
    return BNFineTuning(inner, _attack(config), freeze_statistics=config.method.freeze_statistics,
                        train_on=config.method.train_on)


# -- examples_per_epoch(config, num_train) and training_dataset(method, config, train_arrays, start)


def _one_pass(config, num_train):
    return num_train


def _clean_stream(method, config, train_arrays, start):
    """The seeded, repeated, augmented stream of the clean training set, from position ``start``."""
    from tfadv.data import make_dataset

    x, y = train_arrays
    return make_dataset(x, y, config.data.batch_size, shuffle=True, augment=config.data.augment,
                        seed=config.seed, drop_remainder=True, repeat=True, start=start)


def _finetune_examples(config, num_train):
    return 2 * num_train if _offline(config) else num_train  # offline: one pass over the 2N union


def _finetune_stream(method, config, train_arrays, start):
    if _offline(config):
        return method.training_dataset(config.data.batch_size, config.seed, start=start)
    return _clean_stream(method, config, train_arrays, start)


# -- tunable: how ε_max reaches the method


def _configured_step(method, config, eps):
    """The configured step (the spec holds the one resolved for the trial's ε), ``eps / 4`` when unset."""
    return config.method.attack.step_size


def _step_with_eps(method, config, eps):
    """RobMask's PGD step stays the same fraction of ε."""
    return method.step_fraction * eps


@dataclasses.dataclass(frozen=True)
class MethodKind:
    """One training method kind: the whole protocol ``tfadv train`` and ``tfadv tune`` follow.

    Assembly (``tfadv.training.runner.assemble``) calls, in order:
    ``prepare`` (writes what the method reads, the only step that writes),
    ``from_config`` (builds the method, no files), ``examples_per_epoch``
    (the optimizer's steps per epoch), ``training_dataset``; the run's
    ``summary.json`` adds ``Prepared.summary``.

    Attributes:
        build: ``build(inner, **settings)``, the class (or function) users call.
        from_config: ``from_config(inner, config, prepared)`` -> the method for
            an ``ExperimentConfig``'s ``method`` section (reads and writes no file).
        prepare: ``prepare(inner, config, train_arrays, folder, progress=False,
            wait=None)`` -> :class:`Prepared`: what must exist before training
            (offline fine-tuning's stored set and its 1 − SSIM record).
        examples_per_epoch: ``examples_per_epoch(config, num_train)``: the
            examples of one epoch (offline fine-tuning: 2N, clean + stored).
        training_dataset: ``training_dataset(method, config, train_arrays, start)``:
            the repeated stream of global batches from position ``start``
            (a resumed run continues it exactly).
        tunable: how ``tfadv tune``'s ε_max reaches the method
            (:class:`Tunable`), None when ε does not change the trained model.
    """

    build: Callable
    from_config: Callable
    prepare: Callable = _nothing_to_prepare
    examples_per_epoch: Callable = _one_pass
    training_dataset: Callable = _clean_stream
    tunable: Optional[Tunable] = None


# bn_finetune uses its attack only to report robust accuracy: ε would change the
# measurement, not the model, so it is not tunable; standard has no ε.
METHODS_BY_KIND = {
    "standard": MethodKind(standard, _standard_from_config),
    "adversarial": MethodKind(AdversarialTraining, _adversarial_from_config,
                              tunable=Tunable("attack.eps", _configured_step)),
    "finetune": MethodKind(finetune, _finetune_from_config, prepare=_prepare_finetune,
                           examples_per_epoch=_finetune_examples, training_dataset=_finetune_stream,
                           tunable=Tunable("attack.eps", _configured_step)),
    "advprop": MethodKind(AdvProp, _advprop_from_config, tunable=Tunable("attack.eps", _configured_step)),
    "robmask": MethodKind(RobMask, _robmask_from_config, tunable=Tunable("eps_max", _step_with_eps)),
    "bn_finetune": MethodKind(BNFineTuning, _bn_finetune_from_config),
}
"""Every training method by kind (``method.kind`` in a config, whose vocabulary
``tfadv.config.METHOD_KINDS`` this table implements, in the same order)."""

if tuple(METHODS_BY_KIND) != METHOD_KINDS:
    raise ImportError(f"METHODS_BY_KIND {tuple(METHODS_BY_KIND)} must implement tfadv.config.METHOD_KINDS "
                      f"{METHOD_KINDS}")

TUNABLE_METHODS = tuple(kind for kind, entry in METHODS_BY_KIND.items() if entry.tunable is not None)
"""The kinds whose training depends on ε (``tfadv tune`` tunes ε_max for these)."""


def method_kind(kind, name="method.kind"):
    """The :class:`MethodKind` of ``kind`` (ValueError naming ``name`` otherwise)."""
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
    return method_kind(method, "method").build(inner, **settings)


def wrap_from_config(inner, config, train_arrays=None, run_dir=None):
    """The method of an ``ExperimentConfig``, built without writing anything.

    ``method.attack`` is the training attack. Offline fine-tuning reads its
    stored set from ``<run_dir>/adversarial_examples.h5``, written first by
    :func:`prepare_stored_set` (``tfadv train`` and ``tfadv tune`` prepare
    through :func:`tfadv.training.runner.assemble`), and needs
    ``model.init_from`` (the pretrained model). RobMask: see
    ``_robmask_from_config``. ``bn_finetune`` with ``method.robust_model``
    copies that model's weights into ``inner``.
    """
    kind = method_kind(config.method.kind)
    prepared = Prepared(train_arrays)
    if _offline(config) and config.model.init_from:
        if train_arrays is None:
            raise ValueError("Offline fine-tuning needs train_arrays (x, y). Received: train_arrays=None")
        path = _stored_set_path(config, run_dir)
        x, y = train_arrays
        prepared = Prepared(train_arrays, stored_set=path,
                            adversarial_images=read_adversarial_examples(path, inner, x, y, _attack(config)))
    return kind.from_config(inner, config, prepared)


def prepare_stored_set(inner, config, train_arrays, run_dir, progress=False):
    """Write what a config's method reads before it is built: offline fine-tuning's stored set.

    Attacks ``inner`` (the pretrained model) once per training image and
    stores the result in ``<run_dir>/adversarial_examples.h5`` chunk by
    chunk (XLA if ``train.jit_compile``); an interrupted generation resumes
    where it stopped. Other methods store nothing. (``MethodKind.prepare``
    of the config's kind, which also measures the set's 1 − SSIM.)

    Returns:
        The path of the stored set, or ``None`` when the method has none.
    """
    return method_kind(config.method.kind).prepare(inner, config, train_arrays, run_dir, progress=progress).stored_set


__all__ = [
    "ADVERSARIAL_EXAMPLES_FILE", "AdvProp", "AdversarialTraining", "AttackSpec", "BNFineTuning",
    "DEFAULT_ATTACK", "METHODS_BY_KIND", "METHOD_KINDS", "MethodKind",
    "OfflineFineTuning", "Prepared", "RobMask", "TUNABLE_METHODS", "TrainingMethod",
    "Tunable", "finetune", "generate_adversarial_examples", "interpolation_model", "load_adversarial_examples",
    "method_kind", "prepare_stored_set", "read_adversarial_examples", "standard", "stored_set_ssim_distance",
    "training_attack", "wrap", "wrap_from_config",
]


def __getattr__(name):  # former names: tfadv._deprecated, with a DeprecationWarning
    from tfadv import _deprecated

    return _deprecated.former_name(__name__, name)
