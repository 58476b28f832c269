"""Compiled adversarial attacks: plain functions of ``(model_fn, x, y, ...)``.

Each returns the adversarial batch (same shape and dtype as ``x``). Called
eagerly, an attack runs a ``tf.function`` compiled once per
model, input shape and static setting; called inside a ``tf.function`` it
is inlined into the caller's graph. ``model_fn`` is a Keras model, a
``BoundModel`` (``tfadv.models.bind(model, p)``) or any
callable images in [0, 1] -> logits.

- :func:`fgsm` — one signed gradient step (Goodfellow et al., 2014).
- :func:`pgd` — L∞ projected gradient ascent with restarts (Madry et al., 2018).
- :func:`stadv` — spatially transformed adversarial examples (Xiao et al., 2018).
- :func:`apgd` — Auto-PGD with the CE or DLR loss (Croce & Hein, 2020).
- :func:`apgd_targeted` — APGD-T: targeted DLR over the top-9 other classes.
- :func:`fab_targeted` — FAB-T: targeted fast adaptive boundary attack, L∞ (Croce & Hein, 2020).
- :func:`square` — Square Attack, score-based L∞ random search (Andriushchenko et al., 2020).
- :func:`autoattack` — AutoAttack standard: APGD-CE → APGD-T → FAB-T → Square.

:class:`AttackSpec` is one of these attacks with every setting resolved
(``AttackSpec.create({"name": "pgd", "eps": "8/255"})``), runnable with
``spec.run(model_fn, x, y)``: how training, evaluation, tuning and configs
name theirs. :data:`ATTACKS` is the table of attacks by name (function,
settings, defaults, ``is_linf``, ``can_train``): adding an attack is one row.

XLA (``jit_compile``) is on by default on GPU/TPU only: on CPU it made the
attacks slower (see ``tfadv.attacks._compile.use_xla``).
"""

from tfadv.attacks.apgd import apgd, apgd_targeted
from tfadv.attacks.autoattack import autoattack
from tfadv.attacks.fab import fab_targeted
from tfadv.attacks.fgsm import fgsm
from tfadv.attacks.pgd import pgd
from tfadv.attacks.spec import ATTACK_NAMES, ATTACKS, AttackKind, AttackSpec
from tfadv.attacks.square import square
from tfadv.attacks.stadv import flow_loss, flow_warp, stadv

__all__ = ["ATTACK_NAMES", "ATTACKS", "AttackKind", "AttackSpec", "apgd", "apgd_targeted", "autoattack",
           "fab_targeted", "fgsm", "pgd", "square", "stadv", "flow_warp", "flow_loss"]
