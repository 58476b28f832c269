"""APGD: Auto-PGD with the cross-entropy or the DLR loss (Croce & Hein, 2020).

APGD is L∞ PGD without a step size to tune. It starts with a large step
η = 2ε, adds momentum, and at a fixed schedule of checkpoints halves the step
of every example whose search stalled, restarting it from the best point
found so far. With the DLR loss, which is invariant to shifts and positive
rescaling of the logits, it also defeats models that only look robust
because their cross-entropy saturates (gradient masking).
"""

import numpy as np
import tensorflow as tf

from tfadv import checks
from tfadv.attacks import _compile
from tfadv.attacks.losses import cross_entropy_objective, margin

LOSSES = ("ce", "dlr")
MOMENTUM = 0.75
"""α of the momentum update; the first step of every run has none (α = 1)."""

_DLR_EPSILON = 1e-12


def checkpoints(steps):
    """Iterations after which APGD may halve its step, as the reference code counts them.

    The paper writes ``w_j = ⌈p_j · steps⌉`` with ``p_0 = 0``, ``p_1 = 0.22``
    and ``p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)``. The reference
    implementation (``fra31/auto-attack``, ``autoattack/autopgd_base.py``,
    ``n_iter_2``, ``size_decr``, ``n_iter_min``) counts in whole iterations
    instead: the first interval is ``max(⌊0.22 · steps⌋, 1)``, and each next
    one is the previous minus ``max(⌊0.03 · steps⌋, 1)``, but at least
    ``max(⌊0.06 · steps⌋, 1)``. tfadv follows the code, so that results equal
    the reference's. Both give ``[22, 41, 57, 70, 80, 87, 93, 99]`` for 100
    steps; they differ for some other budgets (10 steps: the code checks after
    2, 3, 4, … 10).

    Returns:
        The increasing list of checkpoint iterations in [1, steps].
    """
    checks.check_integer("steps", steps)
    interval = max(int(0.22 * steps), 1)
    decrease, minimum = max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    points, done = [], interval
    while done <= steps:
        points.append(done)
        interval = max(interval - decrease, minimum)
        done += interval
    return points


def dlr_loss(logits, labels):
    """Difference-of-logits-ratio loss per example (Croce & Hein 2020, eq. 6).

    ``DLR(z, y) = −(z_y − max_{i≠y} z_i) / (z_π1 − z_π3 + 1e−12)`` with
    ``z_π1 ≥ z_π2 ≥ …`` the sorted logits. Positive exactly when the example
    is misclassified; unchanged by adding a constant to ``z`` or scaling it
    by a positive factor.

    Args:
        logits: float ``[B, K]`` with ``K >= 3``.
        labels: int ``[B]``.

    Returns:
        float32 ``[B]``.
    """
    logits = tf.cast(logits, tf.float32)
    if logits.shape[-1] is not None and logits.shape[-1] < 3:
        raise ValueError(f"The DLR loss needs at least 3 classes. Received: logits.shape={logits.shape}")
    top3 = tf.math.top_k(logits, k=3).values
    return -margin(logits, labels) / (top3[:, 0] - top3[:, 2] + _DLR_EPSILON)


def dlr_targeted_loss(logits, labels, targets):
    """Targeted difference-of-logits-ratio loss per example (Croce & Hein 2020).

    ``DLR_t(z, y, t) = −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2 + 1e−12)`` with
    ``z_π1 ≥ z_π2 ≥ …`` the sorted logits. Climbing it raises the target's
    logit against the true class's; like the untargeted DLR it is unchanged by
    shifting ``z`` or scaling it by a positive factor.

    Args:
        logits: float ``[B, K]`` with ``K >= 4``.
        labels: int ``[B]``, the true classes ``y``.
        targets: int ``[B]``, the target classes ``t``.

    Returns:
        float32 ``[B]``.
    """
    logits = tf.cast(logits, tf.float32)
    if logits.shape[-1] is not None and logits.shape[-1] < 4:
        raise ValueError(
            f"The targeted DLR loss needs at least 4 classes. Received: logits.shape={logits.shape}")
    top4 = tf.math.top_k(logits, k=4).values
    label_logit = tf.gather(logits, tf.cast(labels, tf.int32), axis=1, batch_dims=1)
    target_logit = tf.gather(logits, tf.cast(targets, tf.int32), axis=1, batch_dims=1)
    scale = top4[:, 0] - 0.5 * (top4[:, 2] + top4[:, 3]) + _DLR_EPSILON
    return -(label_logit - target_logit) / scale


def top_other_classes(logits, labels, count):
    """The ``count`` classes of highest logit other than ``labels``, best first: ``[B, count]`` int64.

    APGD-T's and FAB-T's targets: run ``k`` attacks the ``k``-th column.
    """
    logits = tf.cast(logits, tf.float32)
    is_label = tf.one_hot(labels, tf.shape(logits)[-1], on_value=True, off_value=False)
    others = tf.where(is_label, tf.float32.min, logits)
    return tf.cast(tf.math.top_k(others, k=count).indices, tf.int64)


def apgd(
    model_fn,
    x,
    y,
    eps,
    steps=100,
    loss="ce",
    restarts=1,
    rho=0.75,
    targeted=False,
    *,
    true_labels=None,
    seed=None,
    training=False,
    jit_compile=None,
):
    """APGD (Croce & Hein 2020), L∞: Auto-PGD on the CE or the DLR loss.

    Each run starts at ``x + ε · t / max|t|`` with ``t ~ U(−1, 1)^d``
    (clipped to [0, 1]; the largest coordinate of the start lies on the
    ball, as in the reference code) and iterates, with P the projection
    onto the ε-ball ∩ [0, 1]^d and L the loss (or −L of the target when
    ``targeted``)::

        z     = P(x_k + η_k · sign(∇ₓ L(x_k)))
        x_k+1 = P(x_k + α (z − x_k) + (1 − α)(x_k − x_k−1)),   α = 0.75

    (α = 1 on the first step), from η = 2ε. At the checkpoints
    (:func:`checkpoints`, after 22, 41, 57, 70, 80, 87, 93 and 99 of 100
    steps) an example halves its step and jumps back to its best point when

    1. its loss rose (against the previous iterate's) in at most a fraction
       ``rho`` of the steps since the previous checkpoint (≤, as the
       reference's ``check_oscillation``), or
    2. its step was not halved at the previous checkpoint and its best loss
       has not improved since; this condition is off at the first
       checkpoint (the reference's ``reduced_last_check`` starts true).

    After a jump the momentum is kept: the next step's ``x_k − x_k−1`` is
    ``x_best − x_k`` (the reference overwrites ``x_adv`` but not
    ``x_adv_old``). The first step is counted as an increase when its loss
    is positive: the reference compares it with a still-zero entry of its
    loss history. With ``restarts > 1`` further runs start
    from new random points; they only matter for examples not yet fooled,
    and stop early once every example is. Everything, restarts included, is
    one compiled graph with per-example state in ``tf.while_loop``\\ s.
    Reference: ``fra31/auto-attack``, ``autoattack/autopgd_base.py``
    (``APGDAttack.attack_single_run``); the random numbers are TensorFlow's,
    so single points differ from a PyTorch run, not the algorithm.

    Args:
        model_fn: a Keras model, a ``BoundModel`` (``tfadv.models.bind``) or any callable
            mapping images in [0, 1] to logits.
        x: images ``[B, H, W, C]`` in [0, 1].
        y: int labels ``[B]``: true labels, or the targets if ``targeted``.
        eps: L∞ radius in pixel units (``8/255``), scalar or ``[B]``; a
            tensor is fine (changing it never recompiles).
        steps: iterations per run, a Python int >= 1 (it fixes the checkpoint
            schedule, so each value compiles once); the paper uses 100.
        loss: ``"ce"`` (cross-entropy) or ``"dlr"`` (:func:`dlr_loss`, needs
            at least 3 classes; targeted, :func:`dlr_targeted_loss`, at least 4).
        restarts: random restarts, a Python int >= 1.
        rho: ρ in (0, 1], the fraction of increasing steps below which the
            step is halved (condition 1).
        targeted: move towards the class ``y``: climb ``−CE(z, y)``, or with
            ``loss="dlr"`` the targeted DLR loss ``−(z_yt − z_y)/(z_π1 −
            (z_π3 + z_π4)/2)``, which also needs ``true_labels``.
        true_labels: int ``[B]``, the true classes; required by targeted
            DLR (the loss uses both the true class and the target), unused
            otherwise. For AutoAttack's APGD-T over several targets see
            :func:`apgd_targeted`.
        seed: int seed of the random starts; ``None`` draws one from
            TensorFlow's global generator.
        training: run the model in training mode while crafting.
        jit_compile: compile with XLA: ``None`` (default) where an accelerator is present.

    Returns:
        The adversarial images, same shape and dtype as ``x``: per example
        the last iterate that fools the model in the first run that fools it (as the reference's
        ``x_best_adv``) (misclassified, or
        classified as the target when ``targeted``; ``x`` itself if the
        model already does), otherwise the point of highest loss.

    Reference:
        Croce & Hein, "Reliable evaluation of adversarial robustness with an
        ensemble of diverse parameter-free attacks", ICML 2020
        (arXiv:2003.01690).
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}. Received: loss={loss!r}")
    checks.check_images(x)
    checks.check_labels(x, y)
    needs_true_labels = loss == "dlr" and bool(targeted)
    if needs_true_labels:
        if true_labels is None:
            raise ValueError(
                "Targeted APGD-DLR needs true_labels: its loss −(z_y − z_t)/(z_π1 − (z_π3 + z_π4)/2) "
                "uses the true class y as well as the target t. Received: true_labels=None")
        checks.check_labels(x, true_labels, name="true_labels")
    checks.check_in_unit_interval("eps", eps)
    checks.check_per_example("eps", eps, x)
    checks.check_integer("steps", steps)
    checks.check_integer("restarts", restarts)
    _check_rho(rho)
    images = _compile.as_float(x)
    labels = tf.cast(y, tf.int64)
    true_labels = tf.cast(true_labels, tf.int64) if needs_true_labels else labels
    tensors = (images, labels, true_labels, _compile.as_float(eps), _compile.seed_tensor(seed))
    static = {
        "steps": steps, "loss": loss, "restarts": restarts, "rho": float(rho), "targeted": bool(targeted),
    }
    x_adv = _compile.run_compiled("apgd", _apgd_graph, model_fn, tensors, static, training, jit_compile)
    return tf.cast(x_adv, tf.as_dtype(getattr(x, "dtype", images.dtype)))


def apgd_targeted(
    model_fn,
    x,
    y,
    eps,
    steps=100,
    target_classes=9,
    restarts=1,
    rho=0.75,
    *,
    seed=None,
    training=False,
    jit_compile=None,
):
    """APGD-T, AutoAttack's targeted APGD on the targeted DLR loss, L∞.

    For ``k = 1 … min(target_classes, K − 1)`` the ``k``-th most likely
    class other than the true one (by the clean logits) is the target ``t``
    of one APGD run (:func:`apgd` with ``loss="dlr", targeted=True``,
    ``restarts`` random starts) on the examples not yet misclassified, which
    climbs ``−(z_y − z_t)/(z_π1 − (z_π3 + z_π4)/2)``. Success is
    misclassification, into ``t`` or any other class: per example the point
    of the first target that breaks it is kept. Target 1 runs on every
    example not misclassified; targets 2 … k then run together as one
    stacked batch on the examples target 1 left (:func:`targets_as_batches`):
    the same points as the reference's one-target-after-another loop, in two
    loops instead of k, all in one compiled graph.

    AutoAttack's standard version: ``steps=100``, ``target_classes=9``,
    ``restarts=1``, ``rho=0.75`` (``APGDAttack_targeted(n_restarts=1,
    n_iter=100, rho=.75)`` with ``n_target_classes = 9``).

    Args:
        model_fn: a Keras model, a ``BoundModel`` (``tfadv.models.bind``) or any callable
            images in [0, 1] -> logits (at least 4 classes).
        x: images ``[B, H, W, C]`` in [0, 1].
        y: int true labels ``[B]``.
        eps: L∞ radius, scalar or ``[B]``; a tensor never recompiles.
        steps: APGD iterations per target and restart, a Python int >= 1.
        target_classes: number of target classes, a Python int >= 1 (capped
            at ``K − 1``).
        restarts: random starts per target, a Python int >= 1.
        rho: APGD's ρ in (0, 1].
        seed: int seed of the random starts; ``None`` draws one.
        training: run the model in training mode while crafting.
        jit_compile: XLA: ``None`` (default) means off: the gathers to the examples
            still unbroken have data-dependent shapes, which XLA does not compile
            (``True`` tries, and falls back to a plain graph with a warning).

    Returns:
        The adversarial images, same shape and dtype as ``x``: the first
        misclassified point found, else ``x`` itself where no target succeeded.

    Reference:
        Croce & Hein, ICML 2020 (arXiv:2003.01690), Sec. 4 and its
        AutoAttack code.
    """
    checks.check_linf_inputs(x, y, eps)
    checks.check_integer("steps", steps)
    checks.check_integer("target_classes", target_classes)
    checks.check_integer("restarts", restarts)
    _check_rho(rho)
    images = _compile.as_float(x)
    tensors = (images, tf.cast(y, tf.int64), _compile.as_float(eps), _compile.seed_tensor(seed))
    static = {"steps": steps, "target_classes": target_classes, "restarts": restarts, "rho": float(rho)}
    jit_compile = False if jit_compile is None else jit_compile
    x_adv = _compile.run_compiled("apgd-t", _apgd_targeted_graph, model_fn, tensors, static, training,
                                  jit_compile)
    return _compile.restore_dtype(x_adv, x)


def _check_rho(rho):
    if isinstance(rho, bool) or not (isinstance(rho, (int, float)) and 0.0 < rho <= 1.0):
        raise ValueError(f"rho must be a number in (0, 1]. Received: rho={rho!r}")


def where_examples(condition, a, b):
    """``tf.where`` with a per-example condition ``[B]`` broadcast over ``a``'s other axes."""
    if a.shape.rank > 1:
        condition = tf.reshape(condition, [-1] + [1] * (a.shape.rank - 1))
    return tf.where(condition, a, b)


def on_subset(mask, tensors, run):
    """Run ``run(*subset)`` on the examples where ``mask`` holds, skipping it if there are none.

    ``tensors`` are per-example tensors ``[B, ...]``; ``run`` returns a
    tuple of per-example tensors of the subset. Returns ``(indices [n, 1],
    outputs)`` for ``tf.tensor_scatter_nd_update``. The subset has a dynamic
    size, so a graph body called through this never retraces for it.
    """
    indices = tf.where(mask)
    subset = [tf.gather_nd(tensor, indices) for tensor in tensors]
    return indices, run(*subset)


def _apgd_graph(model_call, x, y, true_labels, eps, seed, *, steps, loss, restarts, rho, targeted):
    if loss == "dlr" and targeted:
        objective = lambda logits: dlr_targeted_loss(logits, true_labels, y)  # noqa: E731
    elif loss == "dlr":
        objective = lambda logits: dlr_loss(logits, y)  # noqa: E731
    else:
        objective = cross_entropy_objective(y, targeted)
    labels = tf.cast(y, tf.int64)

    def fooled(logits):
        predicted = tf.argmax(logits, axis=-1, output_type=tf.int64)
        return tf.equal(predicted, labels) if targeted else tf.not_equal(predicted, labels)

    x_adv, _ = apgd_body(model_call, x, eps, seed, objective, fooled, steps=steps, restarts=restarts, rho=rho)
    return x_adv


def _apgd_targeted_graph(model_call, x, y, eps, seed, *, steps, target_classes, restarts, rho):
    x_adv, _ = apgd_targeted_body(model_call, x, y, eps, seed, steps=steps, target_classes=target_classes,
                                  restarts=restarts, rho=rho)
    return x_adv


def misclassified(labels):
    """``logits -> [B] bool``: the prediction is not ``labels``."""
    return lambda logits: tf.not_equal(tf.argmax(logits, axis=-1, output_type=tf.int64), labels)


def targeted_setup(model_call, x, y, eps, target_classes, attack_name):
    """What a targeted attack over the top other classes starts from (graph code).

    Returns ``(labels [B] int64, eps [B], targets [B, count], fooled [B])``:
    the ``count = min(target_classes, C − 1)`` highest-scoring classes other
    than the true one at the clean point, and which points are already
    misclassified there.
    """
    labels = tf.cast(y, tf.int64)
    eps = tf.broadcast_to(eps, tf.shape(labels))
    clean_logits = tf.cast(model_call(x), tf.float32)
    num_classes = clean_logits.shape[-1]
    if num_classes is None:
        raise ValueError(f"{attack_name} needs the number of classes at trace time. "
                         "Received: logits of unknown width")
    count = min(target_classes, num_classes - 1)
    targets = top_other_classes(clean_logits, labels, count)
    return labels, eps, targets, misclassified(labels)(clean_logits)


def targets_as_batches(x, fooled0, count, run):
    """Run a targeted attack's ``count`` targets: the first alone, the others as one batch.

    ``run(indices [n, 1], first, number) -> (x_adv [n, ...], fooled [n])``
    attacks the examples at ``indices`` with targets ``first … first +
    number − 1`` and returns, per example, the point of the first target (in
    order) that broke it. Target 1 runs on every example not yet fooled; the
    other ``count − 1`` targets run together, stacked into one batch of
    ``(count − 1) · n`` copies, on the examples target 1 left unbroken.

    Every run depends only on its own example, target and random numbers
    (drawn per example of the full batch, then gathered), so this gives the
    same points as running the targets one after another on the examples the
    earlier ones left, as the reference code does; it makes 2 loops instead
    of ``count``, with larger batches, at the price of running targets
    3 … count on an example that target 2 already broke.
    """

    def stage(x_adv, fooled, first, number):
        def attack():
            indices = tf.where(~fooled)
            x_sub, fooled_sub = run(indices, first, number)
            x_sub = where_examples(fooled_sub, x_sub, tf.gather_nd(x_adv, indices))
            return (tf.tensor_scatter_nd_update(x_adv, indices, x_sub),
                    tf.tensor_scatter_nd_update(fooled, indices, fooled_sub))

        return tf.cond(tf.reduce_all(fooled), lambda: (x_adv, fooled), attack)

    x_adv, fooled = stage(x, fooled0, 0, 1)
    if count > 1:
        x_adv, fooled = stage(x_adv, fooled, 1, count - 1)
    return x_adv, fooled


def stacked_first_success(x_runs, fooled_runs, number):
    """``[number · n, ...]`` runs, target-major, to the first successful run per example: ``(x [n, ...], fooled [n])``."""
    fooled_runs = tf.reshape(fooled_runs, [number, -1])
    x_runs = tf.reshape(x_runs, tf.concat([[number, -1], tf.shape(x_runs)[1:]], 0))
    first = tf.argmax(tf.cast(fooled_runs, tf.int32), axis=0, output_type=tf.int32)
    x_first = tf.gather(tf.transpose(x_runs, [1, 0] + list(range(2, x_runs.shape.rank))), first, batch_dims=1)
    return x_first, tf.reduce_any(fooled_runs, axis=0)


def apgd_targeted_body(model_call, x, y, eps, seed, *, steps, target_classes, restarts, rho):
    """APGD-T as graph code: ``(x_adv, fooled [B])``, fooled meaning misclassified at ``x_adv``.

    Target ``k`` (from 0), restart ``r`` starts from noise drawn for the whole
    batch from ``seed + [0, 1000 (k + 1) + r]``; see :func:`targets_as_batches`.
    """
    labels, eps, targets, fooled0 = targeted_setup(model_call, x, y, eps, target_classes, "APGD-T")
    count = targets.shape[-1]
    shape = tf.shape(x)

    def run(indices, first, number):
        x_sub = tf.tile(tf.gather_nd(x, indices), [number, 1, 1, 1])
        y_sub = tf.tile(tf.gather_nd(labels, indices), [number])
        eps_sub = tf.tile(tf.gather_nd(eps, indices), [number])
        target = tf.reshape(tf.transpose(tf.gather_nd(targets, indices)[:, first:first + number]), [-1])

        def start_noise(r):
            return tf.concat([
                tf.gather_nd(tf.random.stateless_uniform(
                    shape, seed + tf.stack([tf.constant(0, tf.int64),
                                            tf.cast(1000 * (first + j + 1) + r, tf.int64)]),
                    -1.0, 1.0), indices)
                for j in range(number)], 0)

        objective = lambda logits: dlr_targeted_loss(logits, y_sub, target)  # noqa: E731
        x_runs, fooled_runs = apgd_body(model_call, x_sub, eps_sub, seed, objective, misclassified(y_sub),
                                        steps=steps, restarts=restarts, rho=rho, start_noise=start_noise)
        return stacked_first_success(x_runs, fooled_runs, number)

    # APGD's best-loss points of unfooled examples are not kept: they are
    # not adversarial, and x is the honest answer there.
    return targets_as_batches(x, fooled0, count, run)


def apgd_body(model_call, x, eps, seed, objective, fooled, *, steps, restarts, rho, start_noise=None):
    """APGD as graph code on any per-example objective.

    Args:
        objective: ``logits -> [B]``, climbed.
        fooled: ``logits -> [B] bool``, the success criterion.
        start_noise: ``r -> [B, ...]`` uniform noise in [−1, 1] of restart
            ``r`` (an int32 scalar tensor); by default drawn from ``seed + [0, r]``.

    Returns:
        ``(x_adv, fooled [B])``: per example the last iterate of the first fooling run that is
        a success (``x`` if the clean point already is), else the point of
        highest objective, and whether it is a success.
    """
    batch = tf.shape(x)[0]
    eps_images = _compile.per_example(eps)
    lower = tf.maximum(x - eps_images, 0.0)
    upper = tf.minimum(x + eps_images, 1.0)

    def project(v):
        # The ε-ball and the box intersect (both hold x), so clipping to the
        # elementwise intersection is the exact projection.
        return tf.clip_by_value(v, lower, upper)

    def evaluate(x_adv):
        """Objective, input gradient and logits at ``x_adv``: one forward and backward pass."""
        seen = {}

        def recording_objective(logits):
            seen["logits"] = logits  # the same graph: reuse the forward pass
            return objective(logits)

        value, grad = _compile.loss_and_input_gradient(model_call, x_adv, recording_objective)
        return value, grad, seen["logits"]

    where = where_examples
    points = checkpoints(steps)
    is_checkpoint = tf.constant([i + 1 in points for i in range(steps)])
    interval = np.zeros(steps, np.float32)  # at a checkpoint: steps since the previous one
    for previous, current in zip([0] + points, points):
        interval[current - 1] = current - previous
    interval = tf.constant(interval)

    def single_run(noise):
        # The reference's start: x + ε · t / max|t|, t ~ U(−1, 1)^d, clipped to
        # [0, 1]: the largest coordinate of the perturbation sits on the ball.
        largest = tf.reduce_max(tf.abs(tf.reshape(noise, [batch, -1])), axis=1)
        x0 = project(x + eps_images * noise / _compile.per_example(largest + 1e-12))
        loss0, grad0, logits0 = evaluate(x0)
        fooled0 = fooled(logits0)
        state = dict(
            x=x0, x_previous=x0, grad=grad0,
            # The loss the first step is compared with when counting increases:
            # the reference compares its first iterate's loss with an unwritten
            # (zero) entry of its loss history, so that step counts as an
            # increase exactly when its loss is positive.
            loss_previous=tf.zeros([batch]) if steps > 1 else tf.fill([batch], np.inf),
            step=tf.broadcast_to(2.0 * eps, [batch]),
            x_best=x0, grad_best=grad0, loss_best=loss0,
            x_fooling=where(fooled0, x0, x), fooled=fooled0,
            increases=tf.zeros([batch]),
            loss_best_at_checkpoint=loss0,
            # True at the start: condition 2 is off at the first checkpoint
            # (the reference's reduced_last_check starts at ones).
            halved_at_checkpoint=tf.ones([batch], tf.bool),
        )

        def iteration(i, s):
            alpha = tf.where(i == 0, 1.0, MOMENTUM)
            z = project(s["x"] + _compile.per_example(s["step"]) * tf.sign(s["grad"]))
            x_new = project(s["x"] + alpha * (z - s["x"]) + (1.0 - alpha) * (s["x"] - s["x_previous"]))
            loss_new, grad_new, logits = evaluate(x_new)

            fooled_now = fooled(logits)
            increases = s["increases"] + tf.cast(loss_new > s["loss_previous"], tf.float32)
            improved = loss_new > s["loss_best"]
            x_best = where(improved, x_new, s["x_best"])
            grad_best = where(improved, grad_new, s["grad_best"])
            loss_best = where(improved, loss_new, s["loss_best"])

            at_checkpoint = is_checkpoint[i]
            oscillating = increases <= rho * interval[i]  # condition 1, ≤ as in the reference
            stalled = ~s["halved_at_checkpoint"] & (loss_best <= s["loss_best_at_checkpoint"])  # condition 2
            halve = at_checkpoint & (oscillating | stalled)
            return i + 1, dict(
                x=where(halve, x_best, x_new),
                # x_k itself, also after a halving: the next step's momentum
                # term is then x_best − x_k, as in the reference.
                x_previous=s["x"],
                grad=where(halve, grad_best, grad_new),
                loss_previous=loss_new,
                step=where(halve, s["step"] / 2.0, s["step"]),
                x_best=x_best, grad_best=grad_best, loss_best=loss_best,
                # The reference keeps the last fooling iterate of a run.
                x_fooling=where(fooled_now, x_new, s["x_fooling"]),
                fooled=s["fooled"] | fooled_now,
                increases=where(at_checkpoint, tf.zeros_like(increases), increases),
                loss_best_at_checkpoint=where(at_checkpoint, loss_best, s["loss_best_at_checkpoint"]),
                halved_at_checkpoint=where(at_checkpoint, halve, s["halved_at_checkpoint"]),
            )

        _, s = tf.while_loop(lambda i, s: i < steps, iteration, (tf.constant(0), state))
        return s["x_fooling"], s["fooled"], s["x_best"], s["loss_best"]

    # The clean image is a candidate: an example the model already gets
    # wrong stays wrong, so APGD never reports accuracy above clean accuracy.
    result = dict(
        x_fooling=x, fooled=fooled(tf.cast(model_call(x), tf.float32)),
        x_best=x, loss_best=tf.fill([batch], -np.inf),
    )

    if start_noise is None:
        def start_noise(r):
            run_seed = seed + tf.stack([tf.constant(0, tf.int64), tf.cast(r, tf.int64)])
            return tf.random.stateless_uniform(tf.shape(x), run_seed, -1.0, 1.0)

    def restart(r, best):
        x_fooling, run_fooled, x_best, loss_best = single_run(start_noise(r))
        newly_fooled = run_fooled & ~best["fooled"]
        improved = loss_best > best["loss_best"]
        return r + 1, dict(
            x_fooling=where(newly_fooled, x_fooling, best["x_fooling"]),
            fooled=best["fooled"] | run_fooled,
            x_best=where(improved, x_best, best["x_best"]),
            loss_best=where(improved, loss_best, best["loss_best"]),
        )

    _, result = tf.while_loop(
        lambda r, best: (r < restarts) & ~tf.reduce_all(best["fooled"]),
        restart,
        (tf.constant(0), result),
    )
    return where(result["fooled"], result["x_fooling"], result["x_best"]), result["fooled"]
