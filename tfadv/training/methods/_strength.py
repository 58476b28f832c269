"""The per-mini-batch random strength p ~ U(0, 1) that RobMask and AdvProp's random-strength variant draw."""

import tensorflow as tf


def uniform_strength(seed, iterations):
    """p ~ U(0, 1) for the mini-batch at optimizer step ``iterations``.

    Drawn from a stateless generator seeded by ``(seed, iterations)``: every
    replica of a ``tf.distribute`` strategy draws the same p, a run with the
    same seed draws the same sequence, and a resumed run (whose optimizer
    step is restored from its checkpoint) continues that sequence where the
    interrupted one stopped.

    Args:
        seed: Python int, the seed of the sequence.
        iterations: the optimizer's step counter (``optimizer.iterations``).

    Returns:
        a float32 scalar tensor in [0, 1).
    """
    step = tf.cast(tf.convert_to_tensor(iterations), tf.int64)
    return tf.random.stateless_uniform([], seed=tf.stack([tf.constant(seed, tf.int64), step]))
