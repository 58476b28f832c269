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
                 repeat=False):
    """Batches of ``(images, labels)`` from in-memory arrays.

    Args:
        x: float32 images [N, H, W, C] in [0, 1].
        y: int labels [N].
        batch_size: examples per batch.
        shuffle: reshuffle each epoch, in an order fixed by ``seed``.
        augment: apply ``cifar_augment`` (pad-4 crop + horizontal flip).
        seed: seed for shuffle order and augmentation.
        drop_remainder: drop the last partial batch (keeps shapes static for XLA).
        repeat: repeat forever (the caller sets ``steps_per_epoch``).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
    if len(x) != len(y):
        raise ValueError(f"x and y differ in length. Received: len(x)={len(x)}, len(y)={len(y)}")
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        dataset = dataset.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    if augment:
        # A counter zipped in gives every example of every epoch its own stateless seed.
        counter = tf.data.Dataset.counter()
        dataset = tf.data.Dataset.zip((counter, dataset)).map(
            lambda i, xy: (cifar_augment(xy[0], tf.stack([tf.cast(seed, tf.int64), i])), xy[1]),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
