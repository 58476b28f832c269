"""Square Attack, L∞: score-based random search (Andriushchenko et al., 2020).

It needs only the model's logits, never a gradient, so a model that hides
its gradient (a zero-gradient input quantizer, a saturated softmax) does not
stop it: in AutoAttack it is the check that robustness is not gradient masking.
"""

import tensorflow as tf

from tfadv import checks
from tfadv.attacks import _compile
from tfadv.attacks.apgd import misclassified, where_examples
from tfadv.attacks.losses import margin

P_INIT = 0.8
QUERIES = 5000
HALVING_ITERATIONS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
"""p halves after each of these iterations (the schedule of the paper's code, written for 10,000 queries)."""



def p_schedule(iteration, p_init=P_INIT, queries=QUERIES, rescale=False):
    """The fraction p of pixels the square of iteration ``iteration`` (from 0) covers.

    ``p = p_init / 2^h`` with ``h`` the number of :data:`HALVING_ITERATIONS`
    strictly below ``iteration``. With ``rescale`` the iteration is first
    mapped to a 10,000-query budget (``⌊iteration · 10000 / queries⌋``), as
    the paper's code does for other budgets; AutoAttack calls Square with
    ``resc_schedule=False``, so at 5,000 queries p halves after iterations
    10, 50, 200, 500, 1000, 2000 and 4000, not twice as fast.
    """
    if rescale:
        iteration = iteration * 10000 // queries
    return p_init / 2 ** sum(iteration > threshold for threshold in HALVING_ITERATIONS)


def square(
    model_fn,
    x,
    y,
    eps,
    queries=QUERIES,
    p_init=P_INIT,
    *,
    rescale_schedule=False,
    seed=None,
    training=False,
    jit_compile=None,
):
    """Square Attack, L∞, untargeted, on the margin loss ``z_y − max_{i≠y} z_i``.

    As AutoAttack's reference code runs it (``fra31/auto-attack``,
    ``autoattack/square.py``, ``SquareAttack.attack_single_run``, L∞):
    it starts from vertical stripes, ``x + ε·s`` with one random sign
    ``s ∈ {−1, +1}`` per column and channel (clipped to [0, 1]), then makes
    ``queries`` iterations. Iteration ``i`` (from 0) draws **one** square
    for the whole batch, of side ``s = round(√(p · H · W))`` (at least 1, at
    most ``min(H, W)``), p from :func:`p_schedule`, at the top-left corner
    ``(⌊u₁ (H − s)⌋, ⌊u₂ (W − s)⌋)``, ``u ~ U[0, 1)`` (so never the last
    position, as the reference's ``random_int(0, h − s)``), and one random
    sign per channel, also shared by the batch. Every example whose margin is
    still positive gets ``clip(x_best + 2ε·sign)`` inside the square,
    projected to the ε-ball ∩ [0, 1], and keeps it if its margin went down or
    is now ≤ 0. The loop stops once every margin is ≤ 0. Success is judged as
    the reference's AutoAttack judges it afterwards: the prediction at the
    returned point is not ``y``.

    So a run costs ``1 + queries`` model evaluations per example (the
    stripes, then one per iteration), 5,001 for AutoAttack's standard
    ``queries=5000``. The loop is one compiled ``tf.while_loop`` at the
    batch's fixed shape: finished examples are masked, not gathered out, so
    the random draws and therefore the result do not depend on which other
    examples are in the batch. The paper's own code (``max-andr/square-attack``)
    draws a square per example and redraws colours that change nothing;
    AutoAttack's does neither, and tfadv follows AutoAttack.

    AutoAttack's standard settings: ``p_init=0.8``, ``queries=5000``, one
    run, ``rescale_schedule=False`` (``SquareAttack(p_init=.8,
    n_queries=5000, n_restarts=1, resc_schedule=False)``).

    Args:
        model_fn: a Keras model, a ``BoundModel`` (``tfadv.models.bind``) or any callable
            images in [0, 1] -> logits; only its outputs are used.
        x: images ``[B, H, W, C]`` in [0, 1].
        y: int true labels ``[B]``.
        eps: L∞ radius, scalar or ``[B]``; a tensor never recompiles.
        queries: iterations after the initial stripes (the reference's
            ``n_queries``), an int >= 1 (a tensor is fine too: it is an
            input of the graph).
        p_init: the initial fraction of pixels a square covers, in (0, 1].
        rescale_schedule: map the iterations onto a 10,000-query schedule.
        seed: int seed of the random search; ``None`` draws one.
        training: run the model in training mode while crafting.
        jit_compile: XLA: ``None`` (default) means on where an accelerator
            is present (the loop has fixed shapes).

    Returns:
        Images like ``x``: the point found per example where it is
        misclassified, else ``x`` itself (a point the model misclassifies
        already is returned as it is).

    Reference:
        Andriushchenko, Croce, Flammarion & Hein, "Square Attack: a
        query-efficient black-box adversarial attack via random search",
        ECCV 2020 (arXiv:1912.00049).
    """
    checks.check_linf_inputs(x, y, eps)
    checks.check_count("queries", queries)
    if isinstance(p_init, bool) or not isinstance(p_init, (int, float)) or not 0.0 < p_init <= 1.0:
        raise ValueError(f"p_init must be a number in (0, 1]. Received: p_init={p_init!r}")
    images = _compile.as_float(x)
    tensors = (images, tf.cast(y, tf.int64), _compile.as_float(eps), tf.cast(queries, tf.int32),
               _compile.seed_tensor(seed))
    static = {"p_init": float(p_init), "rescale_schedule": bool(rescale_schedule)}
    x_adv = _compile.run_compiled("square", _square_graph, model_fn, tensors, static, training, jit_compile)
    return _compile.restore_dtype(x_adv, x)


def _square_graph(model_call, x, y, eps, queries, seed, **settings):
    x_adv, _ = square_body(model_call, x, y, eps, queries, seed, **settings)
    return x_adv


def _p_at(iteration, p_init, queries, rescale):
    """:func:`p_schedule` in graph ops."""
    if rescale:
        iteration = iteration * 10000 // queries
    halvings = tf.reduce_sum(tf.cast(iteration > tf.constant(HALVING_ITERATIONS), tf.float32))
    return p_init / tf.pow(2.0, halvings)


def iteration_draws(seed, iteration, channels):
    """The random numbers of iteration ``iteration``: ``(u [2] in [0, 1), signs [channels] of ±1)``.

    One draw per batch, as the reference: ``u`` places the square's corner
    at ``⌊u · (size − s)⌋`` and ``signs`` colour it, one per channel.
    """
    step_seed = seed + tf.stack([tf.constant(0, tf.int64), tf.cast(iteration, tf.int64) + 1])
    u = tf.random.stateless_uniform([2], step_seed, 0.0, 1.0)
    signs = tf.where(tf.random.stateless_uniform([channels], step_seed + tf.constant([1, 0], tf.int64)) < 0.5,
                     -1.0, 1.0)
    return u, signs


def stripe_signs(seed, batch, width, channels):
    """The initial stripes' signs ``[batch, 1, width, channels]`` of ±1."""
    return tf.where(tf.random.stateless_uniform(tf.stack([batch, 1, width, channels]), seed) < 0.5, -1.0, 1.0)


def square_body(model_call, x, y, eps, queries, seed, *, p_init, rescale_schedule):
    """Square as graph code: ``(x_adv, fooled [B])``, fooled meaning misclassified at ``x_adv``."""
    labels = tf.cast(y, tf.int64)
    shape = tf.shape(x)
    batch, height, width = shape[0], shape[1], shape[2]
    channels = x.shape[-1]
    eps = tf.broadcast_to(eps, [batch])
    eps_images = tf.reshape(eps, [-1, 1, 1, 1])
    lower = tf.maximum(x - eps_images, 0.0)
    upper = tf.minimum(x + eps_images, 1.0)

    def margins(images):
        return margin(tf.cast(model_call(images), tf.float32), labels)

    clean_logits = tf.cast(model_call(x), tf.float32)
    clean_fooled = misclassified(labels)(clean_logits)
    x_stripes = tf.clip_by_value(x + eps_images * stripe_signs(seed, batch, width, channels), 0.0, 1.0)
    # Points misclassified already are done (the reference attacks only the others).
    margin_best = tf.where(clean_fooled, 0.0, margins(x_stripes))
    x_best = x_stripes
    area = tf.cast(height * width, tf.float32)
    rows = tf.range(height)[None, :, None, None]
    columns = tf.range(width)[None, None, :, None]

    def iteration(i, x_best, margin_best):
        active = margin_best > 0.0
        u, signs = iteration_draws(seed, i, channels)
        p = _p_at(i, p_init, queries, rescale_schedule)
        side = tf.cast(tf.round(tf.sqrt(p * area)), tf.int32)
        side = tf.clip_by_value(side, 1, tf.minimum(height, width))
        top = tf.cast(tf.floor(u[0] * tf.cast(height - side, tf.float32)), tf.int32)
        left = tf.cast(tf.floor(u[1] * tf.cast(width - side, tf.float32)), tf.int32)
        inside = (rows >= top) & (rows < top + side) & (columns >= left) & (columns < left + side)
        # x_best lies in the ε-ball ∩ [0, 1]; outside the square it is unchanged.
        x_new = tf.where(inside, tf.clip_by_value(x_best + 2.0 * eps_images * signs, lower, upper), x_best)
        margin_new = margins(x_new)
        accept = active & ((margin_new < margin_best) | (margin_new <= 0.0))
        return i + 1, where_examples(accept, x_new, x_best), tf.where(accept, margin_new, margin_best)

    _, x_best, _ = tf.while_loop(
        lambda i, x_best, margin_best: (i < queries) & tf.reduce_any(margin_best > 0.0),
        iteration,
        (tf.constant(0), x_best, margin_best),
    )
    fooled = misclassified(labels)(tf.cast(model_call(x_best), tf.float32))
    # A point the model gets wrong already stays as it is.
    x_adv = where_examples(clean_fooled, x, where_examples(fooled, x_best, x))
    return x_adv, clean_fooled | fooled
