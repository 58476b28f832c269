"""AutoAttack, standard version, L∞ (Croce & Hein, 2020): four attacks in sequence.

APGD-CE → APGD-T → FAB-T → Square, each run only on the examples the
previous ones left robust, gathered into a smaller batch and scattered back.
Most points fall to APGD-CE, so the expensive targeted attacks and the
5,000-query Square see few; that is where AutoAttack's speed comes from.
"""

import tensorflow as tf

from tfadv import checks
from tfadv.attacks import _compile
from tfadv.attacks.apgd import apgd_body, apgd_targeted_body, misclassified, on_subset, where_examples
from tfadv.attacks.fab import ALPHA_MAX, BETA, ETA, fab_targeted_body
from tfadv.attacks.losses import cross_entropy
from tfadv.attacks.square import P_INIT, QUERIES, square_body

COMPONENTS = ("clean", "apgd-ce", "apgd-t", "fab-t", "square")
"""``broken_by[b]`` indexes this tuple (−1: robust): ``clean`` means misclassified without attack."""

ROBUST = -1
STANDARD = dict(steps=100, target_classes=9, queries=QUERIES)
"""AutoAttack's standard version: APGD-CE (1 run) and APGD-T (9 targets, 1 run each),
100 iterations; FAB-T (9 targets, 1 restart), 100 iterations; Square, 5,000 queries, p_init 0.8."""


def autoattack(
    model_fn,
    x,
    y,
    eps,
    version="standard",
    return_info=False,
    seed=None,
    *,
    steps=STANDARD["steps"],
    target_classes=STANDARD["target_classes"],
    queries=STANDARD["queries"],
    training=False,
    jit_compile=None,
):
    """AutoAttack's standard L∞ evaluation: APGD-CE → APGD-T → FAB-T → Square.

    Every component attacks only the examples still classified correctly,
    and a point broken by one is kept as it is. The settings of the
    standard version (Croce & Hein 2020, and its code's ``version='standard'``):

    - APGD-CE: 100 iterations, 1 run, ρ = 0.75 (:func:`tfadv.attacks.apgd`);
    - APGD-T: targeted DLR loss, the 9 most likely other classes, 100
      iterations and 1 run each (:func:`tfadv.attacks.apgd_targeted`);
    - FAB-T: the same 9 targets, 100 iterations, 1 restart, α_max 0.1,
      η 1.05, β 0.9 (:func:`tfadv.attacks.fab_targeted`);
    - Square: 5,000 queries, p_init 0.8, 1 run (:func:`tfadv.attacks.square`).

    The whole sequence is one compiled graph (gathers and scatters of a
    dynamic number of examples included), traced once per model and input
    shape: changing ε never retraces.

    Args:
        model_fn: a Keras model, a ``BoundModel`` (``tfadv.models.bind``) or any callable
            images in [0, 1] -> logits (at least 4 classes, for APGD-T's loss).
        x: images ``[B, H, W, C]`` in [0, 1].
        y: int true labels ``[B]``.
        eps: L∞ radius, scalar or ``[B]``; a tensor is fine.
        version: ``"standard"``; ``"plus"`` and ``"rand"`` are not implemented.
        return_info: also return ``broken_by``, an int32 ``[B]`` array: the
            index in :data:`COMPONENTS` of what broke each point (0 =
            misclassified without attack), −1 where the point is robust.
        seed: int seed of the random starts and searches; ``None`` draws one.
        steps: iterations of APGD-CE, APGD-T and FAB-T (standard: 100). Fewer
            is not AutoAttack's standard evaluation; for quick checks only.
        target_classes: targets of APGD-T and FAB-T (standard: 9).
        queries: Square's queries (standard: 5,000).
        training: run the model in training mode while crafting.
        jit_compile: XLA: ``None`` (default) means off: the gathers to the examples
            still unbroken have data-dependent shapes, which XLA does not compile
            (``True`` tries, and falls back to a plain graph with a warning).

    Returns:
        The adversarial images like ``x`` (``x`` itself where robust), and
        with ``return_info`` the pair ``(x_adv, broken_by)`` (a NumPy array).

    Reference:
        Croce & Hein, "Reliable evaluation of adversarial robustness with an
        ensemble of diverse parameter-free attacks", ICML 2020 (arXiv:2003.01690).
    """
    if version in ("plus", "rand"):
        raise NotImplementedError(
            f"AutoAttack's {version!r} version is not implemented; tfadv runs the standard version "
            "(APGD-CE, APGD-T, FAB-T, Square).")
    if version != "standard":
        raise ValueError(f"version must be 'standard'. Received: version={version!r}")
    checks.check_linf_inputs(x, y, eps)
    checks.check_integer("steps", steps)
    checks.check_integer("target_classes", target_classes)
    checks.check_integer("queries", queries)
    images = _compile.as_float(x)
    tensors = (images, tf.cast(y, tf.int64), _compile.as_float(eps), _compile.seed_tensor(seed))
    static = {"steps": steps, "target_classes": target_classes, "queries": queries}
    jit_compile = False if jit_compile is None else jit_compile
    x_adv, broken_by = _compile.run_compiled(
        "autoattack", _autoattack_graph, model_fn, tensors, static, training, jit_compile)
    x_adv = _compile.restore_dtype(x_adv, x)
    if return_info:
        return x_adv, broken_by.numpy() if tf.executing_eagerly() else broken_by
    return x_adv


def _component_bodies(model_call, steps, target_classes, queries):
    """``name -> body(x, y, eps, seed) -> (x_adv, fooled)`` for the standard sequence."""

    def apgd_ce(x, y, eps, seed):
        return apgd_body(model_call, x, eps, seed, lambda logits: cross_entropy(logits, y), misclassified(y),
                         steps=steps, restarts=1, rho=0.75)

    def apgd_t(x, y, eps, seed):
        return apgd_targeted_body(model_call, x, y, eps, seed, steps=steps, target_classes=target_classes,
                                  restarts=1, rho=0.75)

    def fab_t(x, y, eps, seed):
        return fab_targeted_body(model_call, x, y, eps, seed, steps=steps, target_classes=target_classes,
                                 restarts=1, alpha_max=ALPHA_MAX, eta=ETA, beta=BETA, search_steps=0)

    def square(x, y, eps, seed):
        return square_body(model_call, x, y, eps, tf.constant(queries), seed, p_init=P_INIT,
                           rescale_schedule=False)

    return {"apgd-ce": apgd_ce, "apgd-t": apgd_t, "fab-t": fab_t, "square": square}


def _autoattack_graph(model_call, x, y, eps, seed, *, steps, target_classes, queries):
    labels = tf.cast(y, tf.int64)
    eps = tf.broadcast_to(eps, tf.shape(labels))
    robust = ~misclassified(labels)(tf.cast(model_call(x), tf.float32))
    broken_by = tf.where(robust, ROBUST, 0)
    x_adv = x
    bodies = _component_bodies(model_call, steps, target_classes, queries)
    for number, name in enumerate(COMPONENTS[1:], start=1):
        component_seed = seed + tf.constant([1_000_003 * number, 0], tf.int64)

        def run(x_adv=x_adv, robust=robust, broken_by=broken_by, body=bodies[name], number=number,
                component_seed=component_seed):
            indices, (x_sub, fooled_sub) = on_subset(
                robust, (x, labels, eps), lambda *subset: body(*subset, component_seed))
            x_sub = where_examples(fooled_sub, x_sub, tf.gather_nd(x, indices))
            broken_sub = tf.where(fooled_sub, number, ROBUST)
            return (tf.tensor_scatter_nd_update(x_adv, indices, x_sub),
                    tf.tensor_scatter_nd_update(robust, indices, ~fooled_sub),
                    tf.tensor_scatter_nd_update(broken_by, indices, broken_sub))

        x_adv, robust, broken_by = tf.cond(
            tf.reduce_any(robust), run, lambda x_adv=x_adv, robust=robust, broken_by=broken_by: (
                x_adv, robust, broken_by))
    return x_adv, broken_by
