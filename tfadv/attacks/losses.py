"""Per-example losses that attacks climb or descend.

Every function maps float32 logits ``[B, K]`` and int labels ``[B]`` to a
float32 vector ``[B]``: one value per example, never a batch mean, so that
one example's gradient does not depend on the others or on the batch size
(a mean would also shrink every input gradient by 1/B, which is what makes
float16 gradients underflow).
"""

import tensorflow as tf


def cross_entropy(logits, labels):
    """Softmax cross-entropy ``−log softmax(z)_y`` per example, in float32."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int32), logits=tf.cast(logits, tf.float32)
    )


def cross_entropy_objective(labels, targeted=False):
    """What the L∞ attacks climb: ``logits -> CE(z, y)``, or ``−CE(z, t)`` when targeted.

    Climbing ``−CE(z, t)`` pulls the example towards the target ``t``; with
    one sign convention, "keep the restart with the highest objective" is
    right for both kinds of attack.
    """
    if targeted:
        return lambda logits: -cross_entropy(logits, labels)
    return lambda logits: cross_entropy(logits, labels)


def margin(logits, labels):
    """Logit margin ``z_y − max_{i≠y} z_i`` per example.

    Positive exactly when the example is classified as ``y``. The building
    block of the Carlini–Wagner loss and of APGD's DLR loss.
    """
    logits = tf.cast(logits, tf.float32)
    is_label = tf.one_hot(labels, tf.shape(logits)[-1], on_value=True, off_value=False)
    label_logit = tf.reduce_max(tf.where(is_label, logits, logits.dtype.min), axis=-1)
    best_other = tf.reduce_max(tf.where(is_label, logits.dtype.min, logits), axis=-1)
    return label_logit - best_other


def carlini_wagner(logits, labels, kappa=0.0, targeted=False):
    """Carlini–Wagner margin loss with confidence ``κ``, to be minimised.

    Untargeted (``labels`` are the true classes)::

        L = max(z_y − max_{i≠y} z_i, −κ)

    Targeted (``labels`` are the targets ``t``)::

        L = max(max_{i≠t} z_i − z_t, −κ)

    The loss reaches its floor ``−κ`` once the example is misclassified
    (untargeted) or classified as the target (targeted) with a logit margin
    of at least ``κ``; from there its gradient is zero and the attack stops
    pushing that example.

    Reference:
        Carlini & Wagner, "Towards Evaluating the Robustness of Neural
        Networks", IEEE S&P 2017 (the ``f_6`` objective).
    """
    signed_margin = -margin(logits, labels) if targeted else margin(logits, labels)
    return tf.maximum(signed_margin, -tf.cast(kappa, tf.float32))
