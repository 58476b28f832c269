"""FGSM: the fast gradient sign method (Goodfellow et al., 2014)."""

import tensorflow as tf

from tfadv import checks
from tfadv.attacks import _compile
from tfadv.attacks.losses import cross_entropy_objective


def fgsm(model_fn, x, y, eps, targeted=False, *, training=False, jit_compile=None):
    """One signed gradient step of size ε, in the L∞ ball around ``x``.

    Untargeted, the step climbs the cross-entropy of the true label;
    targeted, it descends the cross-entropy of the target::

        x_adv = clip(x + ε · sign(∇ₓ CE(f(x), y)), 0, 1)        (untargeted)
        x_adv = clip(x − ε · sign(∇ₓ CE(f(x), t)), 0, 1)        (targeted)

    Pixels whose gradient is exactly zero do not move.

    Args:
        model_fn: a Keras model, a ``BoundModel`` (``tfadv.models.bind``)
            (``tfadv.models.conditioning.bind_condition``) or any callable
            mapping images in [0, 1] to logits.
        x: images ``[B, H, W, C]`` in [0, 1].
        y: int labels ``[B]``: true labels, or the targets if ``targeted``.
        eps: L∞ radius in pixel units (``8/255``), a scalar or one per
            example ``[B]``; a Python number or a tensor (changing it never
            recompiles).
        targeted: move towards the class ``y`` instead of away from it.
        training: run the model in training mode while crafting (BN batch
            statistics); by default inference mode.
        jit_compile: compile with XLA: ``True``, ``False``, or ``None``
            (default) for XLA on GPU/TPU only, where it pays (on CPU it
            makes these attacks slower; see ``_compile.use_xla``). If XLA
            cannot compile the model, the attack falls back to graph mode.

    Returns:
        The adversarial images, same shape and dtype as ``x``.

    Reference:
        Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial
        Examples", ICLR 2015 (arXiv:1412.6572).
    """
    checks.check_linf_inputs(x, y, eps)
    images = _compile.as_float(x)
    tensors = (images, tf.cast(y, tf.int64), _compile.as_float(eps))
    x_adv = _compile.run_compiled(
        "fgsm", _fgsm_graph, model_fn, tensors, {"targeted": bool(targeted)}, training, jit_compile
    )
    return _compile.restore_dtype(x_adv, x)


def _fgsm_graph(model_call, x, y, eps, *, targeted):
    _, grad = _compile.loss_and_input_gradient(model_call, x, cross_entropy_objective(y, targeted))
    return tf.clip_by_value(x + _compile.per_example(eps) * tf.sign(grad), 0.0, 1.0)
