"""What to evaluate: ε sweeps and the presets of the papers' tables.

Attacks are :class:`tfadv.attacks.AttackSpec`\\ s: one attack with every
setting resolved, so that a result can record exactly what produced it and a
rerun can tell whether a stored result still applies. A *plan* is the dict of
keyword arguments of :func:`tfadv.evaluation.evaluate` that a preset returns.
"""

from tfadv.attacks.spec import AttackSpec, parse_eps

PAPER2_EPS = tuple(k / 255 for k in (0, 2, 4, 6, 8))
"""The ε grid of the masking paper's (paper 2's) Tables 5 and 6: ε ∈ {0, 2, 4, 6, 8}/255.

The tables' columns (flattened out of the paper's text; read from the PDF in
``../shared/papers/README.md``: "robust accuracy under PGD-100 (step ε/5,
random start) and AutoAttack at ε ∈ {0, 2, 4, 6, 8}/255"). The text says
"when ε = 0, robust accuracy is reduced to the test accuracy of unperturbed
(natural) test samples" and discusses "ε >= 6/255" and "ε = 8/255". The one
definition of the grid: the PGD sweep, Table 6's AutoAttack and configs'
``eval.eps_sweep`` (unset) all take it."""

SWEEP_EPS = PAPER2_EPS
"""Former name of :data:`PAPER2_EPS` (which once added 1/255, a point of neither paper)."""

PAPER2_STEP_FRACTION = 0.2
"""Every paper-2 PGD steps ε/5. Training: "We set the PGD attack strength ε = 8/255 with
cross-entropy (CE) loss and the step-size to ε/5." Evaluation: "we use 100-step PGD with step
size ε/5) that is equipped with random start." (paper 2, Section 4)."""


def pgd_sweep(eps_values=None, steps=100, step_fraction=PAPER2_STEP_FRACTION, random_start=True, restarts=1,
              seed=0):
    """L∞ PGD at every ε of ``eps_values``, step ``step_fraction · ε``.

    The defaults are the masking paper's (paper 2's) Tables 5/6: PGD-100,
    step ε/5, random start, ε ∈ :data:`PAPER2_EPS` (``eps_values=None``).
    """
    eps_values = PAPER2_EPS if eps_values is None else eps_values
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


PAPER1_STADV_RADIUS = 0.3 / 64
"""stAdv's L∞ flow bound in the loss-landscape paper's evaluation, in grid units.

The paper (Section 3): "We use FGSM with the ℓ∞ radius of 8/255, PGD with
radius 1/255 for 10 iters, and stAdv with radius 0.3/64." It does not give
the unit. tfadv reads it in :data:`PAPER1_STADV_UNIT`, ``"grid"``: the
normalized ``[-1, 1]`` coordinates of ``grid_sample`` in which the authors'
released code (mister_ed's ``FullSpatial``) states and clips its flow bound
(0.05 there), with ``align_corners=True`` as that PyTorch did, so 0.3/64 grid
units are 0.3/64 · 31/2 ≈ 0.073 px on 32-px CIFAR images. Read as pixels,
0.3/64 ≈ 0.0047 px would move a pixel by under 0.5 % of the difference to
its neighbour (≈ 0.1/255 on typical CIFAR edges), which could not bring the
base model to the 0.0 % stAdv accuracy of Table 1; 0.073 px (changes of a
few /255 at edges, the scale of the PGD 1/255 column that also reaches
0.0 %) can. Either reading is a guess the paper leaves open: pass another
``flow_bound``/``flow_unit`` to compare.
"""

PAPER1_STADV_UNIT = "grid"
"""The unit :data:`PAPER1_STADV_RADIUS` is read in (see there), and with it τ and Adam's step."""

PAPER1_STADV_TAU = 0.05
"""stAdv's τ in the paper-1 presets, in grid units: the released code's
(``scripts/advtrain_resnet32_stadv.py``: ``{'adv': 1.0, 'st': 0.05}``); the paper gives none."""

PAPER1_STADV_LEARNING_RATE = 0.001
"""stAdv's Adam learning rate in the paper-1 presets, in grid units: the released code's
(``scripts/advtrain_resnet32_stadv.py``: ``pgd_kwargs['optimizer_kwargs']['lr'] = 0.001``)."""

PAPER1_STADV_STEPS = 100
"""stAdv's Adam steps in the paper-1 presets: the released code's (``GLOBAL_ATK_KWARGS['num_iterations']``)."""


def paper1_stadv(flow_bound=PAPER1_STADV_RADIUS, steps=PAPER1_STADV_STEPS):
    """stAdv with the released code's loss and optimizer (grid units: τ 0.05, Adam 0.001), bounded by ``flow_bound`` grid units."""
    return AttackSpec("stadv", flow_bound=flow_bound, flow_unit=PAPER1_STADV_UNIT, tau=PAPER1_STADV_TAU,
                      learning_rate=PAPER1_STADV_LEARNING_RATE, steps=steps)


def paper1_attacks():
    """The loss-landscape paper's Table 1 attacks: FGSM 8/255, PGD-10 at 1/255, stAdv at 0.3/64 grid units.

    "We use FGSM with the ℓ∞ radius of 8/255, PGD with radius 1/255 for 10
    iters, and stAdv with radius 0.3/64" (Section 3). The stAdv radius is an
    L∞ bound on the flow in ``grid_sample``'s coordinates
    (:data:`PAPER1_STADV_RADIUS`); the paper gives no other stAdv setting,
    so they are the released code's, in the same units (:func:`paper1_stadv`:
    CW f6 + 0.05 × the flow loss, 100 Adam steps of 0.001).
    """
    return [
        AttackSpec("fgsm", eps=8 / 255),
        AttackSpec("pgd", eps=1 / 255, steps=10),
        paper1_stadv(),
    ]


PAPER1_SSIM_CONVENTION = "skimage_compare_ssim"
"""How paper 1's Table 2 is measured, as the released code measures it.

The authors' evaluation (mister_ed ``adversarial_evaluation.py``,
``EvaluationResult.avg_successful_ssim``) averages scikit-image's
``ssim(original, adversarial, multichannel=True)`` over the *successful*
attacks of each batch and reports one minus that mean, on float images in
[0, 1] (so scikit-image's defaults: 7×7 uniform window, sample covariance,
``data_range`` 2 from the float dtype range; :mod:`tfadv.metrics.ssim`,
``docs/ssim_conventions.md``). "Successful" is ``collect_successful`` in
``adversarial_perturbations.py``: "SUCCESSFUL here means that the
adversarial is different", the prediction on the adversarial image differs
from that on the original: tfadv's ``flipped`` population."""

PAPER1_SSIM_POPULATION = "flipped"
"""The images paper 1's Table 2 averages over: those whose prediction the attack changed (see above)."""


def strong_attacks(eps=8 / 255, steps=100, restarts=1):
    """APGD-CE and APGD-DLR (Croce & Hein 2020); the report adds their per-example worst case."""
    return [
        AttackSpec("apgd-ce", eps=eps, steps=steps, restarts=restarts),
        AttackSpec("apgd-dlr", eps=eps, steps=steps, restarts=restarts),
    ]


TABLE6_EPS = PAPER2_EPS
"""Former name of :data:`PAPER2_EPS` for Table 6 (the same grid)."""


def autoattack_sweep(eps_values=PAPER2_EPS, seed=0):
    """AutoAttack (standard version) at every ε of ``eps_values``."""
    return [AttackSpec("autoattack", eps=parse_eps(value), seed=seed) for value in eps_values]


def paper2_table6():
    """The masking paper's Tables 5 and 6: PGD-100 (step ε/5, random start) and AutoAttack over ε.

    The paper: "we use 100-step PGD with step size ε/5) that is equipped with
    random start. Moreover, to further verify the robust accuracy achieved,
    we use the Autoattack (Croce & Hein, 2020) to evaluate the performance."
    ε ∈ :data:`PAPER2_EPS`; at ε = 0 both are clean accuracy. ``eval.md``
    shows them as two tables, as the paper does: PGD-100 over ε (Table 5
    layout, :func:`tfadv.evaluation.sweep_table`) and AutoAttack over ε
    (Table 6 layout, :func:`tfadv.evaluation.robustness_table`).
    """
    return {"sweep": pgd_sweep(PAPER2_EPS), "attacks": autoattack_sweep(PAPER2_EPS)}


PRESETS = {
    "paper1_table1": lambda: {"attacks": paper1_attacks()},
    # Table 2 reports 1 − SSIM of Table 1's attacks: the same runs, so a
    # shared output folder computes them once; measured as the released code
    # measures it (PAPER1_SSIM_CONVENTION, over the flipped images).
    "paper1_table2": lambda: {"attacks": paper1_attacks(), "ssim_convention": PAPER1_SSIM_CONVENTION},
    "paper2_sweep": lambda: {"sweep": pgd_sweep()},
    "strong": lambda: {"attacks": strong_attacks()},
    "autoattack": lambda: {"attacks": [AttackSpec("autoattack", eps=8 / 255)]},
    "paper2_table6": paper2_table6,
}


def preset(name):
    """The ``evaluate`` keyword arguments of a preset: ``attacks`` and/or ``sweep``.

    - ``paper1_table1`` / ``paper1_table2``: clean, FGSM 8/255, PGD-10 1/255
      and stAdv with flow bound 0.3/64 grid units; accuracy (Table 1) and
      mean 1 − SSIM (Table 2, with ``ssim_convention`` the released code's,
      :data:`PAPER1_SSIM_CONVENTION`, over the images the attack flipped).
    - ``paper2_sweep``: PGD-100, step ε/5, ε ∈ {0, 2, 4, 6, 8}/255 (paper 2's Table 5).
    - ``strong``: APGD-CE and APGD-DLR at 8/255 and their worst case.
    - ``autoattack``: AutoAttack, standard version, at 8/255.
    - ``paper2_table6``: PGD-100 (step ε/5) and AutoAttack at ε ∈ {0, 2, 4, 6, 8}/255,
      as two tables like the masking paper's Tables 5 and 6.
    """
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}. Received: preset={name!r}")
    return PRESETS[name]()
