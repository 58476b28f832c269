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

_RESAMPLES = 10  # redraws of a square's colours that would leave the image unchanged


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

    It starts from vertical stripes, ``x + ε·s`` with one random sign
    ``s ∈ {−1, +1}`` per column and channel (clipped to [0, 1]); each
    iteration then draws, per example not yet misclassified, a square of
    side ``round(√(p · H · W))`` (at least 1, at most ``min(H, W)``) at a
    uniform position and one random sign per channel, sets the square to
    ``clip(x + ε·sign, 0, 1)`` (redrawing the signs, up to 10 times, if
    that would change nothing), and keeps the change if the margin went
    down or the example is now misclassified. p follows
    :func:`p_schedule`. Only examples not yet broken are sent to the model,
    and the loop stops once all are; one compiled ``tf.while_loop``.

    AutoAttack's standard settings: ``p_init=0.8``, ``queries=5000``, one
    run, ``rescale_schedule=False`` (``SquareAttack(p_init=.8,
    n_queries=5000, n_restarts=1, resc_schedule=False)``). tfadv counts
    the initial stripes as the first of ``queries`` model evaluations, and
    draws each example's square and colours independently, as the paper's
    reference code does (AutoAttack's PyTorch port draws one square per batch).

    Args:
        model_fn: a Keras model, a ``BoundModel`` (``tfadv.models.bind``) or any callable
            images in [0, 1] -> logits; only its outputs are used.
        x: images ``[B, H, W, C]`` in [0, 1].
        y: int true labels ``[B]``.
        eps: L∞ radius, scalar or ``[B]``; a tensor never recompiles.
        queries: model evaluations per example, a Python int >= 1 (a tensor
            is fine too: it is an input of the graph).
        p_init: the initial fraction of pixels a square covers, in (0, 1].
        rescale_schedule: map the iterations onto a 10,000-query schedule.
        seed: int seed of the random search; ``None`` draws one.
        training: run the model in training mode while crafting.
        jit_compile: XLA: ``None`` (default) means off: the gathers to the examples
            still unbroken have data-dependent shapes, which XLA does not compile
            (``True`` tries, and falls back to a plain graph with a warning).

    Returns:
        Images like ``x``: the first misclassified point found per example,
        else ``x`` itself.

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
    jit_compile = False if jit_compile is None else jit_compile
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


def square_body(model_call, x, y, eps, queries, seed, *, p_init, rescale_schedule):
    """Square as graph code: ``(x_adv, fooled [B])``, fooled meaning misclassified at ``x_adv``."""
    labels = tf.cast(y, tf.int64)
    shape = tf.shape(x)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    eps = tf.broadcast_to(eps, [batch])
    eps_images = tf.reshape(eps, [-1, 1, 1, 1])
    lower = tf.maximum(x - eps_images, 0.0)
    upper = tf.minimum(x + eps_images, 1.0)

    def random_signs(shape_, seed_):
        return tf.where(tf.random.stateless_uniform(shape_, seed_) < 0.5, -1.0, 1.0)

    def scores(images, labels_):
        logits = tf.cast(model_call(images), tf.float32)
        return margin(logits, labels_), misclassified(labels_)(logits)

    clean_margin, clean_fooled = scores(x, labels)
    stripes = random_signs(tf.stack([batch, 1, width, channels]), seed)
    x_stripes = tf.clip_by_value(x + eps_images * stripes, 0.0, 1.0)
    stripes_margin, stripes_fooled = scores(x_stripes, labels)
    x_best = where_examples(clean_fooled, x, x_stripes)
    margin_best = tf.where(clean_fooled, clean_margin, stripes_margin)
    fooled = clean_fooled | stripes_fooled
    area = tf.cast(height * width, tf.float32)
    rows = tf.range(height)[None, :, None, None]
    columns = tf.range(width)[None, None, :, None]

    def iteration(i, x_best, margin_best, fooled):
        step_seed = seed + tf.stack([tf.constant(0, tf.int64), tf.cast(i + 1, tf.int64)])
        indices = tf.where(~fooled)
        count = tf.shape(indices)[0]
        x_sub, best_sub = tf.gather_nd(x, indices), tf.gather_nd(x_best, indices)
        lower_sub, upper_sub = tf.gather_nd(lower, indices), tf.gather_nd(upper, indices)
        eps_sub = tf.reshape(tf.gather_nd(eps, indices), [-1, 1, 1, 1])
        p = _p_at(i, p_init, queries, rescale_schedule)
        side = tf.cast(tf.round(tf.sqrt(p * area)), tf.int32)
        side = tf.clip_by_value(side, 1, tf.minimum(height, width))
        corner = tf.random.stateless_uniform([count, 2], step_seed, 0.0, 1.0)
        top = tf.cast(tf.floor(corner[:, 0] * tf.cast(height - side + 1, tf.float32)), tf.int32)
        left = tf.cast(tf.floor(corner[:, 1] * tf.cast(width - side + 1, tf.float32)), tf.int32)
        top, left = tf.reshape(top, [-1, 1, 1, 1]), tf.reshape(left, [-1, 1, 1, 1])
        inside = (rows >= top) & (rows < top + side) & (columns >= left) & (columns < left + side)

        def candidate(colour_seed):
            # x_best is in the ε-ball, so a ±2ε step clipped back to it sets the square to x ± ε.
            colours = random_signs(tf.stack([count, 1, 1, channels]), colour_seed)
            return tf.where(inside, tf.clip_by_value(best_sub + 2.0 * eps_sub * colours, lower_sub, upper_sub),
                            best_sub)

        def unchanged(x_new):
            return tf.reduce_all(tf.reshape(tf.abs(x_new - best_sub) < 1e-7, [count, -1]), axis=1)

        def redraw(r, x_new):
            colour_seed = step_seed + tf.stack([tf.cast(r + 1, tf.int64), tf.constant(0, tf.int64)])
            return r + 1, where_examples(unchanged(x_new), candidate(colour_seed), x_new)

        x_new = candidate(step_seed + tf.constant([1, 0], tf.int64))
        _, x_new = tf.while_loop(lambda r, x_new: (r < _RESAMPLES) & tf.reduce_any(unchanged(x_new)), redraw,
                                 (tf.constant(0), x_new))
        margin_new, fooled_new = scores(x_new, tf.gather_nd(labels, indices))
        accept = (margin_new < tf.gather_nd(margin_best, indices)) | fooled_new
        return (
            i + 1,
            tf.tensor_scatter_nd_update(x_best, indices, where_examples(accept, x_new, best_sub)),
            tf.tensor_scatter_nd_update(margin_best, indices,
                                        tf.where(accept, margin_new, tf.gather_nd(margin_best, indices))),
            tf.tensor_scatter_nd_update(fooled, indices, fooled_new),
        )

    # The stripes were the first query; the loop spends the other queries − 1.
    _, x_best, _, fooled = tf.while_loop(
        lambda i, x_best, margin_best, fooled: (i < queries - 1) & ~tf.reduce_all(fooled),
        iteration,
        (tf.constant(0), x_best, margin_best, fooled),
    )
    return where_examples(fooled, x_best, x), fooled

