"""PGD: projected gradient descent in the L∞ ball (Madry et al., 2018).

Two update rules: Madry et al.'s signed gradient step (``update="sign"``),
or Adam on the perturbation with the best iterate kept per example
(``update="adam"``, how the loss-landscape paper's released code crafts PGD).
"""

import tensorflow as tf

from tfadv import checks
from tfadv.attacks import _compile
from tfadv.attacks.losses import cross_entropy_objective

UPDATES = ("sign", "adam")
"""PGD's update rules: Madry et al.'s signed step, or Adam on the perturbation."""


def check_update(update):
    """``ValueError`` unless ``update`` is one of :data:`UPDATES` (the one check of the rule)."""
    checks.check_choice("update", update, UPDATES)


ADAM_BETA_1 = 0.9
ADAM_BETA_2 = 0.999
ADAM_EPSILON = 1e-8  # PyTorch's, added to the bias-corrected sqrt(v)


def pgd(
    model_fn,
    x,
    y,
    eps,
    step_size,
    steps,
    random_start=True,
    targeted=False,
    restarts=1,
    *,
    update="sign",
    training=False,
    seed=None,
    jit_compile=None,
):
    """L∞ projected gradient ascent on the cross-entropy, with random restarts.

    From a uniform random start in the ε-ball (or from ``x``), each of the
    ``steps`` iterations takes a signed gradient step and projects back onto
    the intersection of the ε-ball and the [0, 1] box::

        x⁰ = clip(x + U(−ε, ε), 0, 1)
        xᵏ⁺¹ = clip(xᵏ + α · sign(∇ₓ J(xᵏ)), max(x − ε, 0), min(x + ε, 1))

    with ``J = CE(f(x), y)`` untargeted and ``J = −CE(f(x), t)`` targeted.

    With ``update="adam"`` the perturbation δ = x_adv − x is driven by Adam
    (β1 0.9, β2 0.999, ε 1e-8, PyTorch's form) ascending J, α its learning
    rate, and projected after every step::

        g = ∇ₓ J(xᵏ) (per example),  m ← β1·m + (1 − β1)·g,  v ← β2·v + (1 − β2)·g²
        xᵏ⁺¹ = clip(xᵏ + α · m̂ / (√v̂ + 1e-8), max(x − ε, 0), min(x + ε, 1))

    (m̂, v̂ bias-corrected; the first step is α·g/(|g| + 1e-8) ≈ α·sign(g)).
    Adam's moments are not projected, so its iterates need not improve J
    monotonically: the attack returns, per example, the iterate x⁰ … x^steps
    with the highest J (one extra forward pass scores the last one). This is
    the released code of the loss-landscape paper (Prabhu et al.): Adam at
    learning rate 0.01, 100 iterations, projected, keeping the best.
    PyTorch's code differentiates the batch-mean loss; the per-example
    gradient here differs by the factor 1/B, which Adam's normalization
    removes up to its ε.

    With ``restarts > 1`` the attack runs again from new random starts and
    keeps, per example, the final iterate with the highest ``J``. The whole
    attack, restarts included, is one compiled graph.

    Args:
        model_fn: a Keras model, a ``BoundModel`` (``tfadv.models.bind``) or any callable
            mapping images in [0, 1] to logits.
        x: images ``[B, H, W, C]`` in [0, 1].
        y: int labels ``[B]``: true labels, or the targets if ``targeted``.
        eps: L∞ radius in pixel units (``8/255``), scalar or ``[B]``.
        step_size: α, the L∞ size of one step (``update="adam"``: Adam's
            learning rate, pixel units), > 0, scalar or ``[B]``.
        steps: number of gradient steps, >= 1 (a tensor is fine: changing it
            never recompiles).
        random_start: start from a uniform point of the ε-ball instead of x.
        targeted: move towards the class ``y``.
        restarts: number of independent runs, >= 1 (a Python int).
        update: ``"sign"`` (Madry et al.) or ``"adam"`` (Adam on the
            perturbation with learning rate ``step_size``, best iterate kept).
        training: run the model in training mode while crafting.
        seed: int seed of the random starts; ``None`` draws one from
            TensorFlow's global generator. A seed reproduces the attack for
            one setting of ``jit_compile`` (XLA's random number generator
            differs from TensorFlow's kernels).
        jit_compile: compile with XLA: ``True``, ``False``, or ``None``
            (default) for XLA on GPU/TPU only, where it pays (on CPU it
            makes these attacks slower; see ``_compile.use_xla``). If XLA
            cannot compile the model, the attack falls back to graph mode.

    Returns:
        The adversarial images, same shape and dtype as ``x``.

    Reference:
        Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards Deep Learning
        Models Resistant to Adversarial Attacks", ICLR 2018 (arXiv:1706.06083).
    """
    checks.check_linf_inputs(x, y, eps)
    checks.check_positive("step_size", step_size)
    checks.check_per_example("step_size", step_size, x)
    checks.check_count("steps", steps)
    checks.check_integer("restarts", restarts)
    check_update(update)
    images = _compile.as_float(x)
    tensors = (
        images,
        tf.cast(y, tf.int64),
        _compile.as_float(eps),
        _compile.as_float(step_size),
        tf.cast(steps, tf.int32),
        _compile.seed_tensor(seed),
    )
    static = {"targeted": bool(targeted), "random_start": bool(random_start), "restarts": restarts,
              "update": update}
    x_adv = _compile.run_compiled("pgd", _pgd_graph, model_fn, tensors, static, training, jit_compile)
    return _compile.restore_dtype(x_adv, x)


def _pgd_graph(model_call, x, y, eps, step_size, steps, seed, *, targeted, random_start, restarts,
               update="sign"):
    objective = cross_entropy_objective(y, targeted)
    eps = _compile.per_example(eps)
    step_size = _compile.per_example(step_size)
    lower = tf.maximum(x - eps, 0.0)
    upper = tf.minimum(x + eps, 1.0)

    def step(i, x_adv):
        _, grad = _compile.loss_and_input_gradient(model_call, x_adv, objective)
        return i + 1, tf.clip_by_value(x_adv + step_size * tf.sign(grad), lower, upper)

    def run(restart):
        x_adv = x
        if random_start:
            # A different Philox stream per restart.
            restart_seed = seed + tf.stack([tf.constant(0, tf.int64), tf.cast(restart, tf.int64)])
            noise = tf.random.stateless_uniform(tf.shape(x), restart_seed, -1.0, 1.0)
            x_adv = tf.clip_by_value(x + eps * noise, 0.0, 1.0)
        if update == "adam":
            return _adam_ascent(model_call, objective, x_adv, step_size, steps, lower, upper)
        _, x_adv = tf.while_loop(lambda i, _: i < steps, step, (tf.constant(0), x_adv))
        return x_adv

    if restarts == 1:  # nothing to compare: skip the extra forward pass
        return run(0)

    def keep_better(restart, best, best_objective):
        candidate = run(restart)
        candidate_objective = _compile.model_loss(model_call, candidate, objective)
        better = tf.reshape(candidate_objective > best_objective, [-1, 1, 1, 1])
        return restart + 1, tf.where(better, candidate, best), tf.maximum(candidate_objective, best_objective)

    first = run(0)
    _, best, _ = tf.while_loop(
        lambda restart, *_: restart < restarts,
        keep_better,
        (tf.constant(1), first, _compile.model_loss(model_call, first, objective)),
    )
    return best


def _adam_ascent(model_call, objective, start, learning_rate, steps, lower, upper):
    """Projected Adam ascent on ``objective`` from ``start``; the best iterate per example."""

    def step(i, x_adv, m, v, best, best_objective):
        value, grad = _compile.loss_and_input_gradient(model_call, x_adv, objective)
        better = tf.reshape(value > best_objective, [-1, 1, 1, 1])
        best = tf.where(better, x_adv, best)
        best_objective = tf.maximum(value, best_objective)
        t = tf.cast(i + 1, tf.float32)
        m = ADAM_BETA_1 * m + (1.0 - ADAM_BETA_1) * grad
        v = ADAM_BETA_2 * v + (1.0 - ADAM_BETA_2) * tf.square(grad)
        m_hat = m / (1.0 - tf.pow(ADAM_BETA_1, t))
        v_hat = v / (1.0 - tf.pow(ADAM_BETA_2, t))
        x_adv = tf.clip_by_value(x_adv + learning_rate * m_hat / (tf.sqrt(v_hat) + ADAM_EPSILON), lower, upper)
        return i + 1, x_adv, m, v, best, best_objective

    zeros = tf.zeros_like(start)
    initial_objective = tf.fill([tf.shape(start)[0]], tf.constant(-float("inf")))
    _, last, _, _, best, best_objective = tf.while_loop(
        lambda i, *_: i < steps, step, (tf.constant(0), start, zeros, zeros, start, initial_objective))
    last_is_better = tf.reshape(_compile.model_loss(model_call, last, objective) > best_objective, [-1, 1, 1, 1])
    return tf.where(last_is_better, last, best)
