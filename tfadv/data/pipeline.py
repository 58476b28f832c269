"""tf.data pipelines: shuffle, augment, batch, prefetch, with a seed for order."""
import tensorflow as tf


def cifar_augment(image, seed):
    """The standard CIFAR augmentation: 4-pixel zero pad, random crop, random flip.

    Stateless ops driven by ``seed`` (shape [2]) so an epoch's augmentations are
    reproducible from the pipeline seed.
    """
    padded = tf.pad(image, [[4, 4], [4, 4], [0, 0]])
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    cropped = tf.image.stateless_random_crop(padded, tf.shape(image), seed=crop_seed)
    return tf.image.stateless_random_flip_left_right(cropped, seed=flip_seed)


def make_dataset(x, y, batch_size, shuffle=False, augment=False, seed=0, drop_remainder=False,
                 repeat=False, start=0):
    """Batches of ``(images, labels)`` from in-memory arrays.

    With ``repeat`` the examples form one endless stream whose element at
    position ``i`` is a function of ``(seed, i)`` alone: pass ``k`` (positions
    ``k·N .. k·N+N−1``) visits the examples in a stateless permutation
    seeded by ``(seed, k)``, and the augmentation of position ``i`` is seeded
    by ``(seed, i)``. So ``start=i`` continues a stream exactly where an
    uninterrupted one would be after ``i`` examples: a resumed training run
    sees the same batches as one that never stopped, at no cost (nothing
    before ``start`` is computed).

    Args:
        x: float32 images [N, H, W, C] in [0, 1] (or a dict of arrays with N rows).
        y: int labels [N].
        batch_size: examples per batch.
        shuffle: reshuffle each pass, in an order fixed by ``seed``.
        augment: apply ``cifar_augment`` (pad-4 crop + horizontal flip).
        seed: seed for shuffle order and augmentation.
        drop_remainder: drop the last partial batch (keeps shapes static for XLA).
        repeat: repeat forever (the caller sets ``steps_per_epoch``).
        start: with ``repeat``, the stream position (examples already consumed) to begin at.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
    count = len(y)
    if len(tf.nest.flatten(x)[0]) != count:
        raise ValueError(f"x and y differ in length. Received: len(x)={len(tf.nest.flatten(x)[0])}, len(y)={count}")
    if start < 0 or (start and not repeat):
        raise ValueError(f"start must be >= 0 and needs repeat=True. Received: start={start}, repeat={repeat}")
    if repeat:
        dataset = _endless_stream(x, y, shuffle, seed, start)
    else:
        dataset = tf.data.Dataset.from_tensor_slices((x, y))
        if shuffle:
            dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=True)
        dataset = tf.data.Dataset.zip((tf.data.Dataset.counter(), dataset))
    if augment:
        dataset = dataset.map(
            lambda i, xy: (i, (cifar_augment(xy[0], tf.stack([tf.cast(seed, tf.int64), i])), xy[1])),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    dataset = dataset.map(lambda i, xy: xy)
    return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def _endless_stream(x, y, shuffle, seed, start):
    """``(position, (x_i, y_i))`` for positions ``start, start+1, …`` (see :func:`make_dataset`)."""
    count = len(y)
    first_pass, offset = divmod(int(start), count)
    seed = tf.constant(seed, tf.int64)

    def pass_order(k):
        order = tf.range(count, dtype=tf.int64)
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(order, seed=tf.stack([seed, k]))
        return tf.data.Dataset.from_tensor_slices(order)

    indices = tf.data.Dataset.counter(first_pass).flat_map(pass_order).skip(offset)
    positions = tf.data.Dataset.counter(int(start))
    x_all = tf.nest.map_structure(tf.convert_to_tensor, x)
    y_all = tf.convert_to_tensor(y)
    return tf.data.Dataset.zip((positions, indices)).map(
        lambda position, i: (position, (tf.nest.map_structure(lambda a: tf.gather(a, i), x_all),
                                        tf.gather(y_all, i))),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
