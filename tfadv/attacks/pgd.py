"""PGD: projected gradient descent in the L∞ ball (Madry et al., 2018)."""

import tensorflow as tf

from tfadv.attacks import _compile
from tfadv.attacks.losses import cross_entropy_objective


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
    With ``restarts > 1`` the attack runs again from new random starts and
    keeps, per example, the final iterate with the highest ``J``. The whole
    attack, restarts included, is one compiled graph.

    Args:
        model_fn: a Keras model, a ``ConditionedModelFn`` or any callable
            mapping images in [0, 1] to logits.
        x: images ``[B, H, W, C]`` in [0, 1].
        y: int labels ``[B]``: true labels, or the targets if ``targeted``.
        eps: L∞ radius in pixel units (``8/255``), scalar or ``[B]``.
        step_size: α, the L∞ size of one step, > 0, scalar or ``[B]``.
        steps: number of gradient steps, >= 1 (a tensor is fine: changing it
            never recompiles).
        random_start: start from a uniform point of the ε-ball instead of x.
        targeted: move towards the class ``y``.
        restarts: number of independent runs, >= 1 (a Python int).
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
    _compile.check_images(x)
    _compile.check_labels(x, y)
    _compile.check_in_unit_interval("eps", eps)
    _compile.check_per_example("eps", eps, x)
    _compile.check_positive("step_size", step_size)
    _compile.check_per_example("step_size", step_size, x)
    _compile.check_count("steps", steps)
    _compile.check_static_count("restarts", restarts)
    images = _compile.as_float(x)
    tensors = (
        images,
        tf.cast(y, tf.int64),
        _compile.as_float(eps),
        _compile.as_float(step_size),
        tf.cast(steps, tf.int32),
        _compile.seed_tensor(seed),
    )
    static = {"targeted": bool(targeted), "random_start": bool(random_start), "restarts": restarts}
    x_adv = _compile.run_compiled("pgd", _pgd_graph, model_fn, tensors, static, training, jit_compile)
    return _compile.restore_dtype(x_adv, x)


def _pgd_graph(model_call, x, y, eps, step_size, steps, seed, *, targeted, random_start, restarts):
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
