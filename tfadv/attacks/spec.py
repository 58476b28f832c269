"""One attack with every setting resolved: :class:`AttackSpec`.

Training methods, evaluation and tuning all describe their attacks with it,
so an attack reads the same in a config, a training run and a results table,
and a stored result can record exactly which settings produced it.
"""

import dataclasses
import fractions
import math
from collections.abc import Mapping
from typing import Optional

import numpy as np

from tfadv.attacks.apgd import apgd
from tfadv.attacks.fgsm import fgsm
from tfadv.attacks.pgd import pgd
from tfadv.attacks.stadv import DEFAULT_LEARNING_RATE as STADV_LEARNING_RATE
from tfadv.attacks.stadv import DEFAULT_STEPS as STADV_STEPS
from tfadv.attacks.stadv import check_flow_bound_unit, stadv

ATTACK_NAMES = ("fgsm", "pgd", "stadv", "apgd-ce", "apgd-dlr")
LINF_ATTACKS = ("fgsm", "pgd", "apgd-ce", "apgd-dlr")

SETTINGS = {
    "fgsm": ("eps",),
    "pgd": ("eps", "steps", "step_size", "random_start", "restarts", "seed"),
    "stadv": ("steps", "tau", "learning_rate", "kappa", "flow_bound", "flow_bound_unit"),
    "apgd-ce": ("eps", "steps", "restarts", "seed"),
    "apgd-dlr": ("eps", "steps", "restarts", "seed"),
}
"""The settings each attack uses; the others stay ``None``."""

DEFAULTS = {
    "fgsm": {},
    "pgd": {"steps": 10, "random_start": True, "restarts": 1, "seed": 0},
    "stadv": {"steps": STADV_STEPS, "tau": 0.05, "learning_rate": STADV_LEARNING_RATE,
              "kappa": 0.0},
    "apgd-ce": {"steps": 100, "restarts": 1, "seed": 0},
    "apgd-dlr": {"steps": 100, "restarts": 1, "seed": 0},
}
"""Values of unset settings (PGD's step size defaults to ``ε / 4`` separately)."""

PGD_STEP_FRACTION = 0.25
"""PGD's default step size as a fraction of ε (``ε / 4``)."""

SEED_STRIDE = 1_000_003
"""Batch ``b`` of a seeded run draws its random starts from ``seed · SEED_STRIDE + b``."""


def _as_number(value):
    """``value`` as a finite float (strings as fractions: ``"8/255"``), or None if not a number."""
    if isinstance(value, str):
        try:
            return float(fractions.Fraction(value.strip()))
        except (ValueError, ZeroDivisionError):
            pass
        # Fraction refuses a decimal numerator such as the paper's "0.3/64".
        numerator, slash, denominator = value.partition("/")
        try:
            number = float(numerator) / float(denominator) if slash else None
        except (ValueError, ZeroDivisionError):
            return None
        return number if number is not None and math.isfinite(number) else None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        return None
    return float(value) if math.isfinite(value) else None


def parse_eps(value, name="eps"):
    """ε from a number or a string such as ``"8/255"`` or ``"0.03"``.

    Raises:
        ValueError: naming ``name`` and the value, if it is not a number in [0, 1].
    """
    number = _as_number(value)
    if number is None:
        raise ValueError(
            f"{name} must be a number in [0, 1] such as 8/255. Received: {name}={value!r}")
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must be in [0, 1]. Received: {name}={value!r}")
    return number


def format_eps(eps):
    """``8/255`` when ε is a whole number of 255ths (``0`` for zero), else 4 significant digits."""
    steps_of_255 = eps * 255
    if abs(steps_of_255 - round(steps_of_255)) < 1e-6:
        return "0" if round(steps_of_255) == 0 else f"{round(steps_of_255)}/255"
    return f"{eps:.4g}"


def _checked_int(name, value, minimum):
    is_integer = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if not is_integer or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}. Received: {name}={value!r}")
    return int(value)


def _checked_number(name, value, strictly_positive):
    number = _as_number(value)
    if number is None or (number <= 0 if strictly_positive else number < 0):
        bound = "> 0" if strictly_positive else ">= 0"
        raise ValueError(f"{name} must be a number {bound} (a fraction such as 2/255 is fine). "
                         f"Received: {name}={value!r}")
    return number


@dataclasses.dataclass(frozen=True)
class AttackSpec:
    """One untargeted attack with every setting resolved, validated once.

    Settings left ``None`` take the attack's defaults (:data:`DEFAULTS`);
    settings the attack does not use (:data:`SETTINGS`) are set to ``None``,
    so they neither appear in its record nor tell two equal attacks apart.
    Every strength may be a fraction string such as ``"8/255"``.

    The attack runs with the model in inference mode (moving BN statistics),
    as the model is attacked at evaluation: in training mode the iterates of
    every step would enter the moving statistics, and batch statistics would
    make one example's perturbation depend on its neighbours.

    Args:
        name: ``fgsm``, ``pgd``, ``stadv``, ``apgd-ce`` or ``apgd-dlr``.
        eps: L∞ radius in [0, 1] (``8/255``); required by the L∞ attacks,
            unused by stAdv.
        steps: iterations (PGD, APGD) or Adam steps (stAdv); default PGD-10,
            APGD-100, stAdv's own.
        step_size: PGD's step α > 0; default ``ε / 4``.
        random_start: PGD starts from a uniform point of the ε-ball (True).
        restarts: PGD and APGD random restarts, >= 1.
        seed: seed of the random starts of PGD and APGD (0); see :meth:`run`.
        tau, learning_rate, kappa, flow_bound: stAdv's flow-loss weight, Adam
            step in pixels, Carlini–Wagner confidence and optional L∞ bound on
            the flow (in ``flow_bound_unit``).
        flow_bound_unit: ``"pixels"`` (default when ``flow_bound`` is set) or
            ``"grid"`` (``grid_sample``'s normalized coordinates, one unit =
            ``(size − 1) / 2`` pixels; see :mod:`tfadv.attacks.stadv`). ``None``
            when the flow is unbounded, so unbounded attacks compare equal.

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
    flow_bound_unit: Optional[str] = None

    def __post_init__(self):
        if self.name not in ATTACK_NAMES:
            raise ValueError(f"attack name must be one of {', '.join(ATTACK_NAMES)}. "
                             f"Received: name={self.name!r}")
        used = SETTINGS[self.name]
        given = {key: getattr(self, key) for key in used if getattr(self, key) is not None}
        values = {**DEFAULTS[self.name], **given}
        if "eps" in used:
            if "eps" not in values:
                raise ValueError(
                    f"{self.name} needs eps, the L∞ radius in [0, 1]. Received: eps=None")
            values["eps"] = parse_eps(values["eps"])
        if self.name == "pgd" and "step_size" not in values:
            values["step_size"] = PGD_STEP_FRACTION * values["eps"]
        for key in ("steps", "restarts"):
            if key in values:
                values[key] = _checked_int(key, values[key], minimum=1)
        if "seed" in values:
            values["seed"] = _checked_int("seed", values["seed"], minimum=0)
        if "random_start" in values and not isinstance(values["random_start"], (bool, np.bool_)):
            raise ValueError("random_start must be True or False. "
                             f"Received: random_start={values['random_start']!r}")
        # A PGD step may be 0 only at ε = 0, where the attack does not run.
        positive = ("learning_rate", "flow_bound")
        if values.get("eps") != 0.0:
            positive += ("step_size",)
        for key in ("step_size", "tau", "learning_rate", "kappa", "flow_bound"):
            if key in values:
                values[key] = _checked_number(key, values[key], strictly_positive=key in positive)
        if "flow_bound_unit" in used:
            if values.get("flow_bound") is None:
                values.pop("flow_bound_unit", None)  # meaningless without a bound
            else:
                values.setdefault("flow_bound_unit", "pixels")
                check_flow_bound_unit(values["flow_bound_unit"])
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
        unknown = sorted(set(attack) - known - {"targeted"})
        if unknown:
            raise ValueError(f"Unknown attack setting(s) {unknown}. Known: {sorted(known)}")
        if attack.get("targeted"):
            raise ValueError("AttackSpec runs untargeted attacks only. "
                             f"Received: targeted={attack['targeted']!r}")
        if "name" not in attack:
            raise ValueError(f"attack needs a name. Received: attack={dict(attack)!r}")
        keep = set(SETTINGS.get(attack["name"], ())) | {"name"}
        return cls(**{key: value for key, value in attack.items() if key in keep})

    def settings(self):
        """The settings that determine the result: the name and the used fields."""
        return {"name": self.name, **{key: getattr(self, key) for key in SETTINGS[self.name]}}

    @property
    def id(self):
        """An exact, unique text form of :meth:`settings`, the key of a stored result."""
        fields = ", ".join(f"{k}={v!r}" for k, v in self.settings().items() if k != "name")
        return f"{self.name}({fields})"

    @property
    def label(self):
        """A short human name, the column header of the tables, e.g. ``PGD-10 ε=1/255``."""
        if self.name == "fgsm":
            return f"FGSM ε={format_eps(self.eps)}"
        if self.name == "stadv":
            bound = "" if self.flow_bound is None else f" ‖f‖∞≤{self.flow_bound:.4g} {self.flow_bound_unit}"
            return f"stAdv τ={self.tau:g}{bound}"
        head = {"pgd": "PGD", "apgd-ce": "APGD-CE", "apgd-dlr": "APGD-DLR"}[self.name]
        restarts = f"×{self.restarts}" if self.restarts > 1 else ""
        return f"{head}-{self.steps}{restarts} ε={format_eps(self.eps)}"

    def run(self, model_fn, x, y, eps=None, batch_index=0, jit_compile=None):
        """The adversarial batch of ``x`` (true labels ``y``) against ``model_fn``.

        Eagerly the attack runs its cached compiled function; inside a
        ``tf.function`` (a ``train_step``) it inlines into the caller's graph.
        With ε = 0 the L∞ attacks return ``x`` itself without running, so an
        ε = 0 column equals clean accuracy exactly.

        Args:
            model_fn: a Keras model, a ``ConditionedModelFn`` or any callable
                images in [0, 1] -> logits.
            x: images ``[B, H, W, C]`` in [0, 1].
            y: int labels ``[B]``.
            eps: a radius replacing ``self.eps`` for this call (a tensor, e.g.
                RobMask's p·ε_max, is fine); PGD's step keeps its ratio to ε
                (``step_size · eps / self.eps``). L∞ attacks only.
            batch_index: PGD and APGD draw their random starts from the seed
                ``seed · SEED_STRIDE + batch_index``, so batch b of a run is
                reproducible. ``None`` draws fresh starts from TensorFlow's
                global generator instead, as a compiled training step must (a
                Python seed there would repeat one start at every step).
            jit_compile: XLA for an eager call; ``None`` uses it on GPU/TPU
                only (see ``tfadv.attacks``).

        Returns:
            The adversarial images, same shape and dtype as ``x``.
        """
        step_size = self.step_size
        if eps is None:
            eps = self.eps
        elif self.name not in LINF_ATTACKS:
            raise ValueError(f"{self.name} has no radius to replace. Received: eps={eps!r}")
        elif self.name == "pgd":
            step_fraction = self.step_size / self.eps if self.eps > 0 else PGD_STEP_FRACTION
            step_size = step_fraction * eps
        if self.name in LINF_ATTACKS and isinstance(eps, (int, float, np.number)) and eps == 0:
            return x
        seed = None
        if self.seed is not None and batch_index is not None:
            seed = self.seed * SEED_STRIDE + _checked_int("batch_index", batch_index, minimum=0)
        if self.name == "fgsm":
            return fgsm(model_fn, x, y, eps, jit_compile=jit_compile)
        if self.name == "pgd":
            return pgd(model_fn, x, y, eps, step_size, self.steps, random_start=self.random_start,
                       restarts=self.restarts, seed=seed, jit_compile=jit_compile)
        if self.name == "stadv":
            return stadv(model_fn, x, y, tau=self.tau, steps=self.steps,
                         learning_rate=self.learning_rate, kappa=self.kappa,
                         flow_bound=self.flow_bound, flow_bound_unit=self.flow_bound_unit or "pixels",
                         jit_compile=jit_compile)
        loss = "ce" if self.name == "apgd-ce" else "dlr"
        return apgd(model_fn, x, y, eps, steps=self.steps, loss=loss, restarts=self.restarts,
                    seed=seed, jit_compile=jit_compile)
