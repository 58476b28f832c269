"""One attack with every setting resolved: :class:`AttackSpec`, and the table of attacks.

Training methods, evaluation, tuning and configs all describe their attacks
with it, so an attack reads the same in a config, a training run and a
results table, and a stored result can record exactly which settings
produced it.

:data:`ATTACKS` is the one place an attack is registered: its name, the
function that runs it, the settings it uses and their defaults, its label,
and what it is good for (``is_linf``: an L∞ attack of radius ε;
``can_train``: training methods may craft with it). Adding an attack is one
row there (plus its ``_run_...`` adapter beside it).
"""

import dataclasses
from collections.abc import Mapping
from typing import Optional

import numpy as np
import tensorflow as tf

from tfadv.checks import check_in_unit_interval, check_integer, parse_number
from tfadv.attacks.apgd import apgd, apgd_targeted
from tfadv.attacks.autoattack import autoattack
from tfadv.attacks.fab import fab_targeted
from tfadv.attacks.fgsm import fgsm
from tfadv.attacks.pgd import check_update
from tfadv.attacks.pgd import pgd
from tfadv.attacks.stadv import DEFAULT_LEARNING_RATE as STADV_LEARNING_RATE
from tfadv.attacks.stadv import DEFAULT_STEPS as STADV_STEPS
from tfadv.attacks.stadv import check_flow_unit, stadv
from tfadv.attacks.square import square

PGD_STEP_FRACTION = 0.25
"""PGD's default step size as a fraction of ε (``ε / 4``)."""

SEED_STRIDE = 1_000_003
"""Batch ``b`` of a seeded run draws its random starts from ``seed · SEED_STRIDE + b``."""


def parse_eps(value, name="eps"):
    """ε from a number or a string such as ``"8/255"`` or ``"0.03"``.

    Raises:
        ValueError: naming ``name`` and the value, if it is not a number in [0, 1].
    """
    number = parse_number(value)
    if number is None:
        raise ValueError(
            f"{name} must be a number in [0, 1] such as 8/255. Received: {name}={value!r}")
    check_in_unit_interval(name, number, received=repr(value))
    return number


def format_eps(eps):
    """``8/255`` when ε is a whole number of 255ths (``0`` for zero), else 4 significant digits."""
    steps_of_255 = eps * 255
    if abs(steps_of_255 - round(steps_of_255)) < 1e-6:
        return "0" if round(steps_of_255) == 0 else f"{round(steps_of_255)}/255"
    return f"{eps:.4g}"


def _checked_number(name, value, strictly_positive):
    number = parse_number(value)
    if number is None or (number <= 0 if strictly_positive else number < 0):
        bound = "> 0" if strictly_positive else ">= 0"
        raise ValueError(f"{name} must be a number {bound} (a fraction such as 2/255 is fine). "
                         f"Received: {name}={value!r}")
    return number


@dataclasses.dataclass(frozen=True)
class AttackKind:
    """What an attack name means: one row of :data:`ATTACKS`.

    Attributes:
        run: ``run(spec, model_fn, x, y, eps, step_size, seed, jit_compile)``
            -> the adversarial batch; ``eps`` and ``step_size`` may be
            tensors (a radius replaced per call), ``seed`` an int or None.
        label: ``label(spec)`` -> the short human name of a spec, e.g. ``PGD-10 ε=1/255``.
        settings: the :class:`AttackSpec` fields the attack uses (the others stay ``None``).
        defaults: values of unset settings.
        is_linf: an L∞ attack of radius ``eps`` (required, replaceable per call).
        can_train: training methods may craft with it (evaluation-only attacks may not).
    """

    run: object
    label: object
    settings: tuple
    defaults: dict
    is_linf: bool
    can_train: bool


def _steps_label(title):
    def label(spec):
        restarts = f"×{spec.restarts}" if spec.restarts > 1 else ""
        return f"{title}-{spec.steps}{restarts} ε={format_eps(spec.eps)}"
    return label


def _run_fgsm(spec, model_fn, x, y, eps, step_size, seed, jit_compile):
    return fgsm(model_fn, x, y, eps, jit_compile=jit_compile)


def _run_pgd(spec, model_fn, x, y, eps, step_size, seed, jit_compile):
    return pgd(model_fn, x, y, eps, step_size, spec.steps, random_start=spec.random_start,
               restarts=spec.restarts, seed=seed, update=spec.update, jit_compile=jit_compile)


def _pgd_label(spec):
    return _steps_label("PGD-Adam" if spec.update == "adam" else "PGD")(spec)


def _run_stadv(spec, model_fn, x, y, eps, step_size, seed, jit_compile):
    return stadv(model_fn, x, y, tau=spec.tau, steps=spec.steps, learning_rate=spec.learning_rate,
                 kappa=spec.kappa, flow_bound=spec.flow_bound, flow_unit=spec.flow_unit,
                 jit_compile=jit_compile)


def _stadv_label(spec):
    unit = "" if spec.flow_unit == "pixels" else f" ({spec.flow_unit} units)"
    bound = "" if spec.flow_bound is None else f" ‖f‖∞≤{spec.flow_bound:.4g}"
    return f"stAdv τ={spec.tau:g}{bound}{unit}"


def _run_apgd(loss):
    def run(spec, model_fn, x, y, eps, step_size, seed, jit_compile):
        return apgd(model_fn, x, y, eps, steps=spec.steps, loss=loss, restarts=spec.restarts,
                    seed=seed, jit_compile=jit_compile)
    return run


def _run_apgd_targeted(spec, model_fn, x, y, eps, step_size, seed, jit_compile):
    return apgd_targeted(model_fn, x, y, eps, steps=spec.steps, restarts=spec.restarts, seed=seed,
                         jit_compile=jit_compile)


def _run_fab_targeted(spec, model_fn, x, y, eps, step_size, seed, jit_compile):
    return fab_targeted(model_fn, x, y, eps, steps=spec.steps, restarts=spec.restarts, seed=seed,
                        jit_compile=jit_compile)


def _run_square(spec, model_fn, x, y, eps, step_size, seed, jit_compile):
    return square(model_fn, x, y, eps, queries=spec.queries, seed=seed, jit_compile=jit_compile)


def _run_autoattack(spec, model_fn, x, y, eps, step_size, seed, jit_compile):
    return autoattack(model_fn, x, y, eps, steps=spec.steps, queries=spec.queries, seed=seed,
                      jit_compile=jit_compile)


def _autoattack_label(spec):
    standard = spec.steps == 100 and spec.queries == 5000
    budget = "" if standard else f" ({spec.steps} steps, {spec.queries} queries)"
    return f"AutoAttack{budget} ε={format_eps(spec.eps)}"


_RESTARTS = {"restarts": 1, "seed": 0}

ATTACKS = {
    "fgsm": AttackKind(
        run=_run_fgsm, label=lambda spec: f"FGSM ε={format_eps(spec.eps)}",
        settings=("eps",), defaults={}, is_linf=True, can_train=True),
    "pgd": AttackKind(
        run=_run_pgd, label=_pgd_label,
        settings=("eps", "steps", "step_size", "random_start", "restarts", "seed", "update"),
        defaults={"steps": 10, "random_start": True, "update": "sign", **_RESTARTS},
        is_linf=True, can_train=True),
    "stadv": AttackKind(
        run=_run_stadv, label=_stadv_label,
        settings=("steps", "tau", "learning_rate", "kappa", "flow_bound", "flow_unit"),
        defaults={"steps": STADV_STEPS, "tau": 0.05, "learning_rate": STADV_LEARNING_RATE, "kappa": 0.0,
                  "flow_unit": "pixels"},
        is_linf=False, can_train=True),
    "apgd-ce": AttackKind(
        run=_run_apgd("ce"), label=_steps_label("APGD-CE"),
        settings=("eps", "steps", "restarts", "seed"),
        defaults={"steps": 100, **_RESTARTS}, is_linf=True, can_train=False),
    "apgd-dlr": AttackKind(
        run=_run_apgd("dlr"), label=_steps_label("APGD-DLR"),
        settings=("eps", "steps", "restarts", "seed"),
        defaults={"steps": 100, **_RESTARTS}, is_linf=True, can_train=False),
    # AutoAttack's components and the standard sequence, at AutoAttack's standard settings
    # (tfadv.attacks.autoattack.STANDARD): evaluation only.
    "apgd-t": AttackKind(
        run=_run_apgd_targeted, label=_steps_label("APGD-T"),
        settings=("eps", "steps", "restarts", "seed"),
        defaults={"steps": 100, **_RESTARTS}, is_linf=True, can_train=False),
    "fab-t": AttackKind(
        run=_run_fab_targeted, label=_steps_label("FAB-T"),
        settings=("eps", "steps", "restarts", "seed"),
        defaults={"steps": 100, **_RESTARTS}, is_linf=True, can_train=False),
    "square": AttackKind(
        run=_run_square, label=lambda spec: f"Square-{spec.queries} ε={format_eps(spec.eps)}",
        settings=("eps", "queries", "seed"),
        defaults={"queries": 5000, "seed": 0}, is_linf=True, can_train=False),
    "autoattack": AttackKind(
        run=_run_autoattack, label=_autoattack_label,
        settings=("eps", "steps", "queries", "seed"),
        defaults={"steps": 100, "queries": 5000, "seed": 0}, is_linf=True, can_train=False),
}
"""Every attack by name. PGD's step size defaults to ``ε / 4`` (:data:`PGD_STEP_FRACTION`)."""

ATTACK_NAMES = tuple(ATTACKS)


@dataclasses.dataclass(frozen=True)
class AttackSpec:
    """One untargeted attack with every setting resolved, validated once.

    Settings left ``None`` take the attack's defaults (its row of
    :data:`ATTACKS`); settings the attack does not use are set to ``None``,
    so they neither appear in its record nor tell two equal attacks apart.
    Every strength may be a fraction string such as ``"8/255"``.

    The attack runs with the model in inference mode (moving BN statistics),
    as the model is attacked at evaluation: in training mode the iterates of
    every step would enter the moving statistics, and batch statistics would
    make one example's perturbation depend on its neighbours.

    Args:
        name: ``fgsm``, ``pgd``, ``stadv``, ``apgd-ce``, ``apgd-dlr``, ``apgd-t``,
            ``fab-t``, ``square`` or ``autoattack`` (the standard version).
        eps: L∞ radius in [0, 1] (``8/255``); required by the L∞ attacks,
            unused by stAdv.
        steps: iterations (PGD, APGD) or Adam steps (stAdv); default PGD-10,
            APGD-100, stAdv's own.
        step_size: PGD's step α > 0; default ``ε / 4``.
        random_start: PGD starts from a uniform point of the ε-ball (True).
        restarts: PGD and APGD random restarts (APGD-T, FAB-T: per target), >= 1.
        queries: Square's queries, alone or inside AutoAttack (5,000).
        seed: seed of the random starts of PGD and APGD (0); see :meth:`run`.
        update: PGD's update rule, ``"sign"`` (Madry et al., default) or
            ``"adam"`` (Adam on the perturbation, learning rate ``step_size``,
            best iterate kept; the loss-landscape paper's released code).
        tau, learning_rate, kappa, flow_bound: stAdv's flow-loss weight, Adam
            step, Carlini–Wagner confidence and optional L∞ bound on the
            flow; τ's flow loss, the step and the bound are in ``flow_unit``.
        flow_unit: stAdv's flow unit, ``"pixels"`` (default) or ``"grid"``
            (``grid_sample``'s normalized coordinates, one unit =
            ``(size − 1) / 2`` pixels, the released loss-landscape code's;
            see :mod:`tfadv.attacks.stadv`). Formerly ``flow_bound_unit``,
            which set the bound's unit only.

    Example:
        >>> spec = AttackSpec.create({"name": "pgd", "eps": "8/255", "steps": 20})
        >>> spec.label
        'PGD-20 ε=8/255'
        >>> x_adv = spec.run(model, x, y)  # doctest: +SKIP
    """

    name: str
    eps: Optional[float] = None
    steps: Optional[int] = None
    step_size: Optional[float] = None
    random_start: Optional[bool] = None
    restarts: Optional[int] = None
    seed: Optional[int] = None
    tau: Optional[float] = None
    learning_rate: Optional[float] = None
    kappa: Optional[float] = None
    flow_bound: Optional[float] = None
    update: Optional[str] = None
    queries: Optional[int] = None
    flow_unit: Optional[str] = None

    def __post_init__(self):
        if self.name not in ATTACKS:
            raise ValueError(f"attack name must be one of {', '.join(ATTACKS)}. "
                             f"Received: name={self.name!r}")
        used = ATTACKS[self.name].settings
        given = {key: getattr(self, key) for key in used if getattr(self, key) is not None}
        values = {**ATTACKS[self.name].defaults, **given}
        if "eps" in used:
            if "eps" not in values:
                raise ValueError(
                    f"{self.name} needs eps, the L∞ radius in [0, 1]. Received: eps=None")
            values["eps"] = parse_eps(values["eps"])
        if self.name == "pgd" and "step_size" not in values:
            values["step_size"] = PGD_STEP_FRACTION * values["eps"]
        for key in ("steps", "restarts", "queries"):
            if key in values:
                values[key] = check_integer(key, values[key], minimum=1)
        if "seed" in values:
            values["seed"] = check_integer("seed", values["seed"], minimum=0)
        if "random_start" in values and not isinstance(values["random_start"], (bool, np.bool_)):
            raise ValueError("random_start must be True or False. "
                             f"Received: random_start={values['random_start']!r}")
        if "update" in values:
            check_update(values["update"])
        # A PGD step may be 0 only at ε = 0, where the attack does not run.
        positive = ("learning_rate", "flow_bound")
        if values.get("eps") != 0.0:
            positive += ("step_size",)
        for key in ("step_size", "tau", "learning_rate", "kappa", "flow_bound"):
            if key in values:
                values[key] = _checked_number(key, values[key], strictly_positive=key in positive)
        if "flow_unit" in values:
            check_flow_unit(values["flow_unit"])
        for field in dataclasses.fields(self):
            if field.name != "name":
                object.__setattr__(self, field.name, values.get(field.name))

    @classmethod
    def create(cls, attack):
        """A spec from a spec, a name, a mapping or a dataclass (``tfadv.config.AttackConfig``).

        ``None`` values take the attack's defaults; settings this attack does
        not use are dropped (an ``AttackConfig`` carries stAdv's fields for a
        PGD attack too). ``targeted`` is accepted only as False.

        Raises:
            ValueError: unknown keys, a missing name, a targeted attack or a
                bad setting, naming the value received.
        """
        if isinstance(attack, cls):
            return attack
        if isinstance(attack, str):
            return cls(name=attack)
        if dataclasses.is_dataclass(attack) and not isinstance(attack, type):
            attack = dataclasses.asdict(attack)
        if not isinstance(attack, Mapping):
            raise ValueError("attack must be a name, a mapping or an AttackSpec. "
                             f"Received: attack={attack!r}")
        known = {field.name for field in dataclasses.fields(cls)}
        if "flow_bound_unit" in attack:
            raise ValueError("flow_bound_unit is now flow_unit, the unit of stAdv's flow bound, of the flow "
                             "loss τ weights and of Adam's learning rate (write the released values in it). "
                             f"Received: flow_bound_unit={attack['flow_bound_unit']!r}")
        unknown = sorted(set(attack) - known - {"targeted"})
        if unknown:
            raise ValueError(f"Unknown attack setting(s) {unknown}. Known: {sorted(known)}")
        if attack.get("targeted"):
            raise ValueError("AttackSpec runs untargeted attacks only. "
                             f"Received: targeted={attack['targeted']!r}")
        if "name" not in attack:
            raise ValueError(f"attack needs a name. Received: attack={dict(attack)!r}")
        kind = ATTACKS.get(attack["name"])
        keep = set(kind.settings if kind else ()) | {"name"}
        return cls(**{key: value for key, value in attack.items() if key in keep})

    @property
    def kind(self):
        """The attack's row of :data:`ATTACKS`."""
        return ATTACKS[self.name]

    @property
    def is_linf(self):
        """An L∞ attack of radius ``eps`` (FGSM, PGD, APGD), whose radius :meth:`run` may replace."""
        return self.kind.is_linf

    @property
    def can_train(self):
        """Training methods may craft with this attack (evaluation-only attacks may not)."""
        return self.kind.can_train

    def settings(self):
        """The settings that determine the result: the name and the used fields.

        PGD's default ``update="sign"`` and stAdv's default
        ``flow_unit="pixels"`` are left out, so ids of results stored before
        the settings existed still match."""
        settings = {"name": self.name, **{key: getattr(self, key) for key in self.kind.settings}}
        if settings.get("update") == "sign":
            del settings["update"]
        if settings.get("flow_unit") == "pixels":
            del settings["flow_unit"]
        return settings

    @property
    def id(self):
        """An exact, unique text form of :meth:`settings`, the key of a stored result."""
        fields = ", ".join(f"{k}={v!r}" for k, v in self.settings().items() if k != "name")
        return f"{self.name}({fields})"

    @property
    def label(self):
        """A short human name, the column header of the tables, e.g. ``PGD-10 ε=1/255``."""
        return self.kind.label(self)

    def run(self, model_fn, x, y, eps=None, batch_index=0, jit_compile=None):
        """The adversarial batch of ``x`` (true labels ``y``) against ``model_fn``.

        Eagerly the attack runs its cached compiled function; inside a
        ``tf.function`` (a ``train_step``) it inlines into the caller's graph.
        With ε = 0 the L∞ attacks return ``x`` itself without running, so an
        ε = 0 column equals clean accuracy exactly.

        Args:
            model_fn: a Keras model, a ``BoundModel`` (``tfadv.models.bind``) or any callable
                images in [0, 1] -> logits.
            x: images ``[B, H, W, C]`` in [0, 1].
            y: int labels ``[B]``.
            eps: a radius replacing ``self.eps`` for this call (a tensor, e.g.
                RobMask's p·ε_max, is fine); PGD's step keeps its ratio to ε
                (``step_size · eps / self.eps``). L∞ attacks only.
            batch_index: PGD and APGD draw their random starts from the seed
                ``seed · SEED_STRIDE + batch_index``, so batch b of a run is
                reproducible. Inside a compiled training step pass a counter
                tensor (a Python seed there would repeat one start at every
                step). ``None`` draws fresh starts from TensorFlow's global
                generator, whose state a resumed process cannot restore.
            jit_compile: XLA for an eager call; ``None`` uses it on GPU/TPU
                only (see ``tfadv.attacks``).

        Returns:
            The adversarial images, same shape and dtype as ``x``.
        """
        step_size = self.step_size
        if eps is None:
            eps = self.eps
        elif not self.is_linf:
            raise ValueError(f"{self.name} has no radius to replace. Received: eps={eps!r}")
        elif step_size is not None:  # the step keeps its ratio to ε
            step_fraction = self.step_size / self.eps if self.eps > 0 else PGD_STEP_FRACTION
            step_size = step_fraction * eps
        if self.is_linf and isinstance(eps, (int, float, np.number)) and eps == 0:
            return x
        seed = None
        if self.seed is not None and batch_index is not None:
            if tf.is_tensor(batch_index):  # a step counter inside a compiled training step
                seed = tf.cast(batch_index, tf.int64) + self.seed * SEED_STRIDE
            else:
                seed = self.seed * SEED_STRIDE + check_integer("batch_index", batch_index, minimum=0)
        return self.kind.run(self, model_fn, x, y, eps=eps, step_size=step_size, seed=seed,
                             jit_compile=jit_compile)


def attack_settings_from_text(text):
    """An attack's settings from its one-line form ``"name:key=value,key=value"``.

    Example: ``"pgd:eps=8/255,steps=10"`` → ``{"name": "pgd", "eps": 8/255,
    "steps": 10}``: numbers (fractions too) are read by
    :func:`tfadv.checks.parse_number`, ``true``/``false`` as booleans, anything
    else stays text. The one reader of this form (``tfadv eval --attack``,
    ``train.validation_attack``).

    Raises:
        ValueError: naming the text when it is empty or a setting is not ``key=value``.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"attack text must be 'name:key=value,...'. Received: attack={text!r}")
    name, _, rest = text.strip().partition(":")
    settings = {"name": name.strip()}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"attack settings must be key=value. Received: {item!r} in attack={text!r}")
        settings[key.strip()] = _text_value(value.strip())
    return settings


def attack_from_text(text):
    """The :class:`AttackSpec` of :func:`attack_settings_from_text` ``(text)``: every error of
    both (a bad form, an unknown attack or setting) is a ``ValueError`` naming the value."""
    return AttackSpec.create(attack_settings_from_text(text))


def _text_value(text):
    """One setting's value from its text: a boolean, an integer, a number (fractions too), or the text."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if text.lstrip("+-").isdigit():
        return int(text)
    number = parse_number(text)
    return text if number is None else number


def __getattr__(name):  # former names: tfadv._deprecated, with a DeprecationWarning
    from tfadv import _deprecated

    return _deprecated.former_name(__name__, name)
