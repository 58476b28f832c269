"""FAB-T: the targeted Fast Adaptive Boundary attack, L∞ (Croce & Hein, 2020).

FAB looks for the smallest L∞ perturbation that changes the prediction. At
each step it linearizes the decision boundary between the true class ``y``
and a target ``t`` at the current iterate, projects both the iterate and
the original point onto that hyperplane (inside the [0, 1] box), and moves
to a convex combination of the two projections, biased toward the original
point so that the perturbation stays small. Once an iterate is adversarial
it steps back toward the original point. AutoAttack uses its targeted
version with the true class against each of the 9 most likely other
classes, and counts only points inside the ε-ball.
"""

import tensorflow as tf

from tfadv import checks
from tfadv.attacks import _compile
from tfadv.attacks.apgd import misclassified, stacked_first_success, targeted_setup, targets_as_batches, where_examples

ALPHA_MAX = 0.1
ETA = 1.05
BETA = 0.9
SEARCH_STEPS = 0
"""No final search by default: AutoAttack's reference FAB (``fra31/auto-attack``, ``autoattack/fab_base.py``)
has none; the FAB paper's own code (``linear_approximation_search``) uses 3 steps."""


def fab_targeted(
    model_fn,
    x,
    y,
    eps,
    steps=100,
    target_classes=9,
    restarts=1,
    *,
    alpha_max=ALPHA_MAX,
    eta=ETA,
    beta=BETA,
    search_steps=SEARCH_STEPS,
    seed=None,
    training=False,
    jit_compile=None,
):
    """FAB-T, L∞: minimal perturbations toward the boundary with each of the top other classes.

    For each target ``t`` (the ``k``-th most likely class other than ``y``
    by the clean logits, ``k = 1 … min(target_classes, K − 1)``) and each
    restart, on the examples not yet broken, from ``x¹ = x`` (restart 0) or
    ``x¹ = x + ε·u/(2‖u‖∞)``, ``u ~ U(−1, 1)`` (later restarts; the
    reference scales by ``min(r, ε)`` with ``r`` the best distance of the
    same run, which is still infinite at a run's start here, since tfadv's
    restarts are separate runs on the points not yet broken; AutoAttack's
    standard version makes one restart, so no random start), it
    iterates ``steps`` times:

    1. linearize ``g = z_t − z_y`` at ``xᵏ``: the hyperplane
       ``π = {v : g(xᵏ) + ∇g(xᵏ)·(v − xᵏ) = 0}``;
    2. ``δ₁``, ``δ₂`` = the minimal-L∞ displacements of ``xᵏ`` and of the
       original point ``x`` onto ``π ∩ [0, 1]^d`` (exact, by sorting the
       coordinates' room to move; the box corner when π is out of reach);
    3. ``α = min(‖δ₁‖∞ / (‖δ₁‖∞ + ‖δ₂‖∞), α_max)`` and
       ``xᵏ⁺¹ = clip((1 − α)(xᵏ + η δ₁) + α(x + η δ₂), 0, 1)``: the
       extrapolation biased toward the original point;
    4. if ``xᵏ⁺¹`` is misclassified, keep it when it is the closest found
       (L∞), then step back: ``xᵏ⁺¹ ← x + β(xᵏ⁺¹ − x)``.

    A point counts only if its distance is at most ε; the others return the
    clean ``x``. This is AutoAttack's reference, ``FABAttack_PT`` as
    ``fra31/auto-attack`` configures it (``autoattack/fab_base.py``,
    ``attack_single_run`` and ``perturb``): ``steps=100``,
    ``target_classes=9``, ``restarts=1``, ``alpha_max=0.1``, ``eta=1.05``,
    ``beta=0.9``, and no final search (``search_steps=0``, the default).

    ``search_steps > 0`` adds the final search of the FAB paper's own code
    (``linear_approximation_search``, 3 steps there): each found point moves
    along the segment toward ``x`` where the linear interpolation of the
    logit margins puts the boundary, keeping the closest point still
    misclassified. It only brings found points closer to ``x``, so it can
    turn a point found outside ε into one inside: it may break *more* points
    than the reference, never fewer, and so is off in AutoAttack.

    Args:
        model_fn: a Keras model, a ``BoundModel`` (``tfadv.models.bind``) or any callable
            images in [0, 1] -> logits (at least 2 classes).
        x: images ``[B, H, W, C]`` in [0, 1].
        y: int true labels ``[B]``.
        eps: L∞ radius, scalar or ``[B]``; a tensor never recompiles.
        steps: iterations per target and restart, a Python int >= 1.
        target_classes: number of targets, a Python int >= 1 (capped at K − 1).
        restarts: runs per target, a Python int >= 1 (later ones start at random).
        alpha_max: the largest weight of the original point's projection, in [0, 1].
        eta: η >= 1, the overshoot of the projection step.
        beta: β in (0, 1), the backward step toward ``x`` after a success.
        search_steps: steps of the final search, a Python int >= 0 (0: none, as AutoAttack's reference).
        seed: int seed of the random restarts; ``None`` draws one.
        training: run the model in training mode while crafting.
        jit_compile: XLA: ``None`` (default) means off: the gathers to the examples
            still unbroken have data-dependent shapes, which XLA does not compile
            (``True`` tries, and falls back to a plain graph with a warning).

    Returns:
        Images like ``x``: per example the closest misclassified point found
        within ε (``x`` if the model already misclassifies ``x``), else ``x``.

    Reference:
        Croce & Hein, "Minimally distorted adversarial examples with a fast
        adaptive boundary attack", ICML 2020 (arXiv:1907.02044).
    """
    checks.check_linf_inputs(x, y, eps)
    checks.check_integer("steps", steps)
    checks.check_integer("target_classes", target_classes)
    checks.check_integer("restarts", restarts)
    checks.check_integer("search_steps", search_steps, minimum=0)
    settings = _checked_settings(alpha_max, eta, beta)
    images = _compile.as_float(x)
    tensors = (images, tf.cast(y, tf.int64), _compile.as_float(eps), _compile.seed_tensor(seed))
    static = dict(steps=steps, target_classes=target_classes, restarts=restarts, search_steps=search_steps,
                  **settings)
    jit_compile = False if jit_compile is None else jit_compile
    x_adv = _compile.run_compiled("fab-t", _fab_graph, model_fn, tensors, static, training, jit_compile)
    return _compile.restore_dtype(x_adv, x)


def _checked_settings(alpha_max, eta, beta):
    def number(name, value, ok, bound):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
            raise ValueError(f"{name} must be a number {bound}. Received: {name}={value!r}")
        return float(value)

    return dict(
        alpha_max=number("alpha_max", alpha_max, lambda v: 0.0 <= v <= 1.0, "in [0, 1]"),
        eta=number("eta", eta, lambda v: v >= 1.0, ">= 1"),
        beta=number("beta", beta, lambda v: 0.0 < v < 1.0, "in (0, 1)"),
    )


def _fab_graph(model_call, x, y, eps, seed, **settings):
    x_adv, _ = fab_targeted_body(model_call, x, y, eps, seed, **settings)
    return x_adv


def linf_projection_to_hyperplane(points, w, b):
    """The smallest L∞ displacement ``δ`` with ``w·(p + δ) = b`` and ``p + δ ∈ [0, 1]^d``.

    Per row: with ``gap = b − w·p``, coordinate ``i`` moves by
    ``sign(w_i)·sign(gap)·min(r, room_i)``, where ``room_i`` is how far it can
    go in that direction inside the box. ``w·δ = Σ |w_i| min(r, room_i)``
    grows piecewise linearly with ``r``; sorting the rooms gives its
    breakpoints, and the smallest ``r`` reaching ``|gap|`` is exact. If the
    hyperplane is out of reach inside the box, every coordinate moves to the
    box (the closest the box allows).

    Args:
        points: float ``[N, d]``.
        w: float ``[N, d]``, the hyperplanes' normals.
        b: float ``[N]``, their offsets.

    Returns:
        float ``[N, d]``.
    """
    gap = b - tf.reduce_sum(w * points, axis=1)
    direction = tf.sign(w) * tf.sign(gap)[:, None]
    room = tf.where(direction > 0, 1.0 - points, tf.where(direction < 0, points, tf.zeros_like(points)))
    weight = tf.abs(w) * tf.cast(direction != 0, w.dtype)
    need = tf.abs(gap)

    order = tf.argsort(room, axis=1)
    room_sorted = tf.gather(room, order, batch_dims=1)
    weight_sorted = tf.gather(weight, order, batch_dims=1)
    below = tf.cumsum(weight_sorted * room_sorted, axis=1, exclusive=True)  # Σ_{j<k} w_j room_j
    above = tf.cumsum(weight_sorted, axis=1, exclusive=True, reverse=True) + weight_sorted  # Σ_{j>=k} w_j
    reach = below + room_sorted * above  # w·δ at r = room_(k)
    size = tf.shape(points)[1]
    first = tf.reduce_sum(tf.cast(reach < need[:, None], tf.int32), axis=1)  # first k reaching need
    reachable = first < size
    k = tf.minimum(first, size - 1)
    below_k = tf.gather(below, k, batch_dims=1)
    above_k = tf.gather(above, k, batch_dims=1)
    radius = tf.math.divide_no_nan(need - below_k, above_k)
    radius = tf.where(reachable, tf.maximum(radius, 0.0), tf.fill(tf.shape(radius), float("inf")))
    return direction * tf.minimum(radius[:, None], room)


def fab_targeted_body(model_call, x, y, eps, seed, *, steps, target_classes, restarts, alpha_max, eta, beta,
                      search_steps):
    """FAB-T as graph code: ``(x_adv, fooled [B])``, fooled meaning misclassified within ε.

    Runs are numbered ``q = k · restarts + r`` (target ``k`` from 0, restart
    ``r``), the reference's order; run ``q > 0`` with ``r > 0`` starts from
    noise drawn for the whole batch from ``seed + [1, q]``. Run 0 goes alone,
    the others as one stacked batch (:func:`tfadv.attacks.apgd.targets_as_batches`).
    """
    labels, eps, targets, fooled0 = targeted_setup(model_call, x, y, eps, target_classes, "FAB-T")
    count = targets.shape[-1]
    shape = tf.shape(x)

    def run(indices, first, number):
        x_one = tf.gather_nd(x, indices)
        targets_one = tf.gather_nd(targets, indices)
        eps_one = tf.gather_nd(eps, indices)
        starts, target = [], []
        for q in range(first, first + number):
            k, r = q // restarts, q % restarts
            target.append(targets_one[:, k])
            if r == 0:
                starts.append(x_one)
            else:
                # Later restarts start at a random point of half the ε-ball around x.
                noise = tf.gather_nd(tf.random.stateless_uniform(
                    shape, seed + tf.constant([1, q], tf.int64), -1.0, 1.0), indices)
                norm = tf.reshape(_linf_distance(noise, tf.zeros_like(noise)), [-1, 1, 1, 1])
                radius = tf.reshape(eps_one, [-1, 1, 1, 1])
                starts.append(tf.clip_by_value(x_one + 0.5 * radius * noise / tf.maximum(norm, 1e-12), 0.0, 1.0))
        x_runs, fooled_runs = _single_run(
            model_call, tf.tile(x_one, [number, 1, 1, 1]), tf.tile(tf.gather_nd(labels, indices), [number]),
            tf.concat(target, 0), tf.tile(eps_one, [number]), tf.concat(starts, 0), steps=steps,
            alpha_max=alpha_max, eta=eta, beta=beta, search_steps=search_steps)
        return stacked_first_success(x_runs, fooled_runs, number)

    return targets_as_batches(x, fooled0, count * restarts, run)


def _linf_distance(a, b):
    return tf.reduce_max(tf.abs(tf.reshape(a - b, [tf.shape(a)[0], -1])), axis=1)


def _single_run(model_call, x, y, target, eps, start, *, steps, alpha_max, eta, beta, search_steps):
    """One FAB run toward ``target`` from ``start`` on examples classified as ``y``: ``(x_adv, found within ε)``."""
    batch = tf.shape(x)[0]
    flat_shape = tf.stack([batch, -1])
    x_flat = tf.reshape(x, flat_shape)
    is_adversarial = misclassified(y)

    def boundary_gap(logits):  # g = z_t − z_y: < 0 while y beats t
        logits = tf.cast(logits, tf.float32)
        return (tf.gather(logits, target, axis=1, batch_dims=1)
                - tf.gather(logits, y, axis=1, batch_dims=1))

    no_distance = tf.fill([batch], float("inf"))

    def iteration(i, x1, adv, distance):
        gap, grad = _compile.loss_and_input_gradient(model_call, x1, boundary_gap)
        w = tf.reshape(grad, flat_shape)
        b = tf.reduce_sum(w * tf.reshape(x1, flat_shape), axis=1) - gap
        both = linf_projection_to_hyperplane(
            tf.concat([tf.reshape(x1, flat_shape), x_flat], 0), tf.concat([w, w], 0), tf.concat([b, b], 0))
        step_from_iterate = tf.reshape(both[:batch], tf.shape(x))
        step_from_origin = tf.reshape(both[batch:], tf.shape(x))
        size_iterate = tf.maximum(tf.reduce_max(tf.abs(both[:batch]), axis=1), 1e-8)
        size_origin = tf.maximum(tf.reduce_max(tf.abs(both[batch:]), axis=1), 1e-8)
        alpha = tf.reshape(tf.clip_by_value(size_iterate / (size_iterate + size_origin), 0.0, alpha_max),
                           [-1, 1, 1, 1])
        x1 = tf.clip_by_value((1.0 - alpha) * (x1 + eta * step_from_iterate)
                              + alpha * (x + eta * step_from_origin), 0.0, 1.0)
        adversarial = is_adversarial(model_call(x1))
        new_distance = _linf_distance(x1, x)
        closer = adversarial & (new_distance < distance)
        adv = where_examples(closer, x1, adv)
        distance = tf.where(closer, new_distance, distance)
        x1 = where_examples(adversarial, x + beta * (x1 - x), x1)  # the backward step
        return i + 1, x1, adv, distance

    _, _, adv, distance = tf.while_loop(
        lambda i, *_: i < steps, iteration, (tf.constant(0), start, x, no_distance))
    found = distance < float("inf")
    if search_steps:
        adv = _final_search(model_call, x, y, adv, found, search_steps)
        distance = tf.where(found, _linf_distance(adv, x), distance)
    within = found & (distance <= eps)
    return where_examples(within, adv, x), within


def _final_search(model_call, x, y, adv, found, search_steps):
    """Move found points toward ``x`` along the segment, where the margins' linear interpolation puts the boundary."""

    def margin_against(logits, other):  # z_y − z_other
        logits = tf.cast(logits, tf.float32)
        return tf.gather(logits, y, axis=1, batch_dims=1) - tf.gather(logits, other, axis=1, batch_dims=1)

    def step(i, inside, outside, outside_logits):
        other = tf.argmax(outside_logits, axis=-1, output_type=tf.int64)
        inside_margin = margin_against(model_call(inside), other)  # > 0: still y
        outside_margin = -margin_against(outside_logits, other)  # > 0: other beats y
        t = inside_margin / (inside_margin + outside_margin + 1e-10)
        t = tf.where((t >= 0.0) & (t <= 1.0), t, tf.ones_like(t))
        t_images = tf.reshape(t, [-1, 1, 1, 1])
        candidate = inside * (1.0 - t_images) + outside * t_images
        candidate_logits = tf.cast(model_call(candidate), tf.float32)
        still_y = ~misclassified(y)(candidate_logits)
        inside = where_examples(still_y, candidate, inside)
        outside = where_examples(still_y | ~found, outside, candidate)
        outside_logits = where_examples(still_y | ~found, outside_logits, candidate_logits)
        return i + 1, inside, outside, outside_logits

    _, _, outside, _ = tf.while_loop(
        lambda i, *_: i < search_steps, step,
        (tf.constant(0), x, adv, tf.cast(model_call(adv), tf.float32)))
    return where_examples(found, outside, adv)
