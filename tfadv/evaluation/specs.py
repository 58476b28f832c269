"""What to evaluate: attack settings, ε sweeps and the presets of the papers' tables.

An :class:`AttackSpec` is one attack with every setting resolved, so that a
result can record exactly what produced it and a rerun can tell whether a
stored result still applies. A *plan* is the dict of keyword arguments of
:func:`tfadv.evaluation.evaluate` that a preset returns.
"""

import dataclasses
import fractions
import math
from typing import Optional

import numpy as np

from tfadv import attacks
from tfadv.attacks.apgd import apgd
from tfadv.attacks.stadv import DEFAULT_LEARNING_RATE as STADV_LEARNING_RATE
from tfadv.attacks.stadv import DEFAULT_STEPS as STADV_STEPS

ATTACK_NAMES = ("fgsm", "pgd", "stadv", "apgd-ce", "apgd-dlr")
LINF_ATTACKS = ("fgsm", "pgd", "apgd-ce", "apgd-dlr")

SETTINGS = {
    "fgsm": ("eps",),
    "pgd": ("eps", "steps", "step_size", "random_start", "restarts", "seed"),
    "stadv": ("steps", "tau", "learning_rate", "kappa", "flow_bound"),
    "apgd-ce": ("eps", "steps", "restarts", "seed"),
    "apgd-dlr": ("eps", "steps", "restarts", "seed"),
}
"""The settings each attack uses; the others stay ``None``."""

DEFAULTS = {
    "fgsm": {},
    "pgd": {"steps": 10, "random_start": True, "restarts": 1, "seed": 0},
    "stadv": {"steps": STADV_STEPS, "tau": 0.05, "learning_rate": STADV_LEARNING_RATE, "kappa": 0.0},
    "apgd-ce": {"steps": 100, "restarts": 1, "seed": 0},
    "apgd-dlr": {"steps": 100, "restarts": 1, "seed": 0},
}
"""Values of unset settings (PGD's step size defaults to ``ε / 4`` separately)."""

PGD_STEP_FRACTION = 0.25
"""PGD's default step size as a fraction of ε (``ε / 4``, as in training)."""

SWEEP_EPS = tuple(k / 255 for k in (0, 1, 2, 4, 6, 8))
"""The ε grid of the loss-landscape paper's Tables 5/6."""


def parse_eps(value, name="eps"):
    """ε from a number or a string such as ``"8/255"`` or ``"0.03"``.

    Raises:
        ValueError: naming ``name`` and the value, if it is not a number in [0, 1].
    """
    try:
        if isinstance(value, str):
            number = float(fractions.Fraction(value.strip()))
        elif isinstance(value, bool):
            raise TypeError
        else:
            number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        raise ValueError(f"{name} must be a number in [0, 1] such as 8/255. Received: {name}={value!r}") from None
    if not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise ValueError(f"{name} must be in [0, 1]. Received: {name}={value!r}")
    return number


def format_eps(eps):
    """``8/255`` when ε is a whole number of 255ths (``0`` for zero), else 4 significant digits."""
    steps_of_255 = eps * 255
    if abs(steps_of_255 - round(steps_of_255)) < 1e-6:
        return "0" if round(steps_of_255) == 0 else f"{round(steps_of_255)}/255"
    return f"{eps:.4g}"


def _checked_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}. Received: {name}={value!r}")
    return int(value)


def _checked_number(name, value, strictly_positive):
    if isinstance(value, str):  # "2/255", as papers and configs write strengths
        try:
            value = float(fractions.Fraction(value.strip()))
        except (ValueError, ZeroDivisionError):
            pass
    valid = isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and math.isfinite(value)
    if not valid or (value <= 0 if strictly_positive else value < 0):
        bound = "> 0" if strictly_positive else ">= 0"
        raise ValueError(f"{name} must be a number {bound}. Received: {name}={value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True)
class AttackSpec:
    """One untargeted attack of an evaluation, with every setting resolved.

    The fields mirror ``tfadv.config.AttackConfig``; settings an attack does
    not use are set to ``None`` so that they neither appear in its record nor
    split its results.

    Args:
        name: ``fgsm``, ``pgd``, ``stadv``, ``apgd-ce`` or ``apgd-dlr``.
        eps: L∞ radius in [0, 1] (a number or ``"8/255"``); required by the
            L∞ attacks, ignored by stAdv.
        steps: iterations (PGD, APGD) or Adam steps (stAdv); defaults in
            :data:`DEFAULTS` (PGD-10, APGD-100, stAdv's own).
        step_size: PGD's step α > 0; default ``ε / 4``.
        random_start: PGD starts from a uniform point of the ε-ball.
        restarts: PGD and APGD random restarts, >= 1.
        seed: seed of the random starts (PGD, APGD); batch ``b`` of an
            evaluation uses ``seed · 1000003 + b``, so results are reproducible.
        tau, learning_rate, kappa, flow_bound: stAdv's flow-loss weight, Adam
            step in pixels, Carlini–Wagner confidence and optional L∞ bound on
            the flow (pixels).
        targeted: must be False: evaluation measures untargeted robustness
            (accepted so that an ``AttackConfig`` converts directly).
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
    targeted: bool = False

    def __post_init__(self):
        if self.name not in ATTACK_NAMES:
            raise ValueError(f"attack name must be one of {', '.join(ATTACK_NAMES)}. Received: name={self.name!r}")
        if self.targeted:
            raise ValueError("evaluation runs untargeted attacks only. Received: targeted=True")
        used = SETTINGS[self.name]
        values = {**DEFAULTS[self.name], **{k: getattr(self, k) for k in used if getattr(self, k) is not None}}
        if "eps" in used:
            if "eps" not in values:
                raise ValueError(f"{self.name} needs eps, the L∞ radius in [0, 1]. Received: eps=None")
            values["eps"] = parse_eps(values["eps"])
        if self.name == "pgd" and "step_size" not in values:
            values["step_size"] = PGD_STEP_FRACTION * values["eps"]
        for key in ("steps", "restarts"):
            if key in values:
                values[key] = _checked_int(key, values[key], minimum=1)
        if "seed" in values:
            values["seed"] = _checked_int("seed", values["seed"], minimum=0)
        if "random_start" in values:
            values["random_start"] = bool(values["random_start"])
        # A PGD step may be 0 only at ε = 0, where the attack does not run.
        positive = ("learning_rate", "flow_bound") + (("step_size",) if values.get("eps") != 0.0 else ())
        for key in ("step_size", "tau", "learning_rate", "kappa", "flow_bound"):
            if key in values:
                values[key] = _checked_number(key, values[key], strictly_positive=key in positive)
        for field in dataclasses.fields(self):
            if field.name not in ("name", "targeted"):
                object.__setattr__(self, field.name, values.get(field.name))

    @classmethod
    def create(cls, attack):
        """A spec from a spec, a name, a mapping or an ``AttackConfig`` dataclass.

        Settings this attack does not use are dropped (a full ``AttackConfig``
        carries stAdv's fields for a PGD attack too); unknown keys raise
        ``ValueError``.
        """
        if isinstance(attack, cls):
            return attack
        if isinstance(attack, str):
            return cls(name=attack)
        if dataclasses.is_dataclass(attack):
            attack = dataclasses.asdict(attack)
        if not isinstance(attack, dict):
            raise ValueError(f"attack must be a name, a mapping or an AttackSpec. Received: attack={attack!r}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(attack) - fields)
        if unknown:
            raise ValueError(f"Unknown attack setting(s) {unknown}. Known: {sorted(fields)}")
        if "name" not in attack:
            raise ValueError(f"attack needs a name. Received: attack={attack!r}")
        keep = set(SETTINGS.get(attack["name"], ())) | {"name", "targeted"}
        return cls(**{key: value for key, value in attack.items() if key in keep})

    def settings(self):
        """The settings that determine the result: the name and the used fields."""
        return {"name": self.name, **{key: getattr(self, key) for key in SETTINGS[self.name]}}

    @property
    def id(self):
        """An exact, unique text form of :meth:`settings`, the key of a stored result."""
        return self.name + "(" + ", ".join(f"{k}={v!r}" for k, v in self.settings().items() if k != "name") + ")"

    @property
    def label(self):
        """The column header of the tables, e.g. ``PGD-10 ε=1/255``."""
        if self.name == "fgsm":
            return f"FGSM ε={format_eps(self.eps)}"
        if self.name == "stadv":
            return f"stAdv τ={self.tau:g}"
        head = {"pgd": "PGD", "apgd-ce": "APGD-CE", "apgd-dlr": "APGD-DLR"}[self.name]
        restarts = f"×{self.restarts}" if self.restarts > 1 else ""
        return f"{head}-{self.steps}{restarts} ε={format_eps(self.eps)}"

    def run(self, model_fn, x, y, batch_index=0, jit_compile=None):
        """The adversarial batch of ``x`` (labels ``y``) against ``model_fn``.

        With ε = 0 the L∞ attacks return ``x`` itself without running, so an
        ε = 0 column equals clean accuracy exactly.
        """
        if self.name in LINF_ATTACKS and self.eps == 0.0:
            return x
        seed = None if self.seed is None else self.seed * 1_000_003 + batch_index
        if self.name == "fgsm":
            return attacks.fgsm(model_fn, x, y, self.eps, jit_compile=jit_compile)
        if self.name == "pgd":
            return attacks.pgd(
                model_fn, x, y, self.eps, self.step_size, self.steps, random_start=self.random_start,
                restarts=self.restarts, seed=seed, jit_compile=jit_compile,
            )
        if self.name == "stadv":
            return attacks.stadv(
                model_fn, x, y, tau=self.tau, steps=self.steps, learning_rate=self.learning_rate,
                kappa=self.kappa, flow_bound=self.flow_bound, jit_compile=jit_compile,
            )
        loss = "ce" if self.name == "apgd-ce" else "dlr"
        return apgd(
            model_fn, x, y, self.eps, steps=self.steps, loss=loss, restarts=self.restarts, seed=seed,
            jit_compile=jit_compile,
        )


def pgd_sweep(eps_values=SWEEP_EPS, steps=100, step_fraction=0.2, random_start=True, restarts=1, seed=0):
    """L∞ PGD at every ε of ``eps_values``, step ``step_fraction · ε``.

    The defaults are the loss-landscape paper's Tables 5/6: PGD-100, step
    ε/5, random start, ε ∈ {0, 1, 2, 4, 6, 8}/255.
    """
    if not step_fraction > 0:
        raise ValueError(f"step_fraction must be > 0. Received: step_fraction={step_fraction!r}")
    specs = []
    for value in eps_values:
        eps = parse_eps(value)
        specs.append(
            AttackSpec(
                "pgd", eps=eps, steps=steps, step_size=step_fraction * eps,
                random_start=random_start, restarts=restarts, seed=seed,
            )
        )
    return specs


def paper1_attacks():
    """The loss-landscape paper's Table 1 attacks: FGSM 8/255, PGD-10 at 1/255, stAdv."""
    return [
        AttackSpec("fgsm", eps=8 / 255),
        AttackSpec("pgd", eps=1 / 255, steps=10),
        AttackSpec("stadv"),
    ]


def strong_attacks(eps=8 / 255, steps=100, restarts=1):
    """APGD-CE and APGD-DLR (Croce & Hein 2020); the report adds their per-example worst case."""
    return [
        AttackSpec("apgd-ce", eps=eps, steps=steps, restarts=restarts),
        AttackSpec("apgd-dlr", eps=eps, steps=steps, restarts=restarts),
    ]


PRESETS = {
    "paper1_table1": lambda: {"attacks": paper1_attacks()},
    # Table 2 reports 1 − SSIM of Table 1's attacks: the same runs, so a
    # shared output folder computes them once.
    "paper1_table2": lambda: {"attacks": paper1_attacks()},
    "paper2_sweep": lambda: {"sweep": pgd_sweep()},
    "strong": lambda: {"attacks": strong_attacks()},
}


def preset(name):
    """The ``evaluate`` keyword arguments of a preset: ``attacks`` and/or ``sweep``.

    - ``paper1_table1`` / ``paper1_table2``: clean, FGSM 8/255, PGD-10 1/255
      and stAdv; accuracy (Table 1) and mean 1 − SSIM (Table 2).
    - ``paper2_sweep``: PGD-100, step ε/5, ε ∈ {0, 1, 2, 4, 6, 8}/255.
    - ``strong``: APGD-CE and APGD-DLR at 8/255 and their worst case.
    """
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}. Received: preset={name!r}")
    return PRESETS[name]()
