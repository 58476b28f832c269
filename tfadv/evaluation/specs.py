"""What to evaluate: ε sweeps and the presets of the papers' tables.

Attacks are :class:`tfadv.attacks.AttackSpec`\\ s: one attack with every
setting resolved, so that a result can record exactly what produced it and a
rerun can tell whether a stored result still applies. A *plan* is the dict of
keyword arguments of :func:`tfadv.evaluation.evaluate` that a preset returns.
"""

from tfadv.attacks.spec import AttackSpec, parse_eps

SWEEP_EPS = tuple(k / 255 for k in (0, 1, 2, 4, 6, 8))
"""The ε grid of the loss-landscape paper's Tables 5/6."""


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


TABLE6_EPS = tuple(k / 255 for k in (0, 2, 4, 6, 8))
"""The ε grid of the masking paper's Table 6 (PGD-100 and AutoAttack)."""


def autoattack_sweep(eps_values=TABLE6_EPS, seed=0):
    """AutoAttack (standard version) at every ε of ``eps_values``."""
    return [AttackSpec("autoattack", eps=parse_eps(value), seed=seed) for value in eps_values]


def paper2_table6():
    """The masking paper's Table 6: PGD-100 (step ε/5, random start) and AutoAttack over ε.

    The paper: "we use 100-step PGD with step size ε/5) that is equipped with
    random start. Moreover, to further verify the robust accuracy achieved,
    we use the Autoattack (Croce & Hein, 2020) to evaluate the performance."
    ε ∈ {0, 2, 4, 6, 8}/255; at ε = 0 both are clean accuracy.
    """
    return {"sweep": pgd_sweep(TABLE6_EPS), "attacks": autoattack_sweep(TABLE6_EPS)}


PRESETS = {
    "paper1_table1": lambda: {"attacks": paper1_attacks()},
    # Table 2 reports 1 − SSIM of Table 1's attacks: the same runs, so a
    # shared output folder computes them once.
    "paper1_table2": lambda: {"attacks": paper1_attacks()},
    "paper2_sweep": lambda: {"sweep": pgd_sweep()},
    "strong": lambda: {"attacks": strong_attacks()},
    "autoattack": lambda: {"attacks": [AttackSpec("autoattack", eps=8 / 255)]},
    "paper2_table6": paper2_table6,
}


def preset(name):
    """The ``evaluate`` keyword arguments of a preset: ``attacks`` and/or ``sweep``.

    - ``paper1_table1`` / ``paper1_table2``: clean, FGSM 8/255, PGD-10 1/255
      and stAdv; accuracy (Table 1) and mean 1 − SSIM (Table 2).
    - ``paper2_sweep``: PGD-100, step ε/5, ε ∈ {0, 1, 2, 4, 6, 8}/255.
    - ``strong``: APGD-CE and APGD-DLR at 8/255 and their worst case.
    - ``autoattack``: AutoAttack, standard version, at 8/255.
    - ``paper2_table6``: PGD-100 (step ε/5) and AutoAttack at ε ∈ {0, 2, 4, 6, 8}/255,
      laid out as the masking paper's Table 6.
    """
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}. Received: preset={name!r}")
    return PRESETS[name]()
