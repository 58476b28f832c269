"""The loss-landscape paper's protocol: fine-tune on a stored 1:1 clean+adversarial set.

Offline (the paper): attack a clean pretrained model once, one untargeted
adversarial example per training image, store them on disk
(:func:`generate_adversarial_examples`, an explicit step with a progress
bar), then fine-tune on the union of the clean and adversarial images
(:class:`OfflineFineTuning`). Online (fresh
adversarial examples every batch) is ``AdversarialTraining`` with
``adversarial_fraction=0.5``.
"""

import json
import os
import time
import warnings

import h5py
import keras
import numpy as np
import tensorflow as tf

import tfadv
from tfadv.fingerprints import fingerprint
from tfadv.models.conditioning import IMAGES
from tfadv.training.methods._common import TrainingMethod, cross_entropy, training_attack

ADVERSARIAL = "adversarial"
"""Key of the per-example flag (1 adversarial, 0 clean) in the fine-tuning inputs."""


def _stored_set_header(array):
    return str((array.dtype.str, array.shape))  # what adversarial_examples.h5 files record


def _fingerprint(*arrays):
    return fingerprint(arrays, header=_stored_set_header)


def _model_fingerprint(model):
    return _fingerprint(*[np.asarray(w) for w in model.get_weights()])


def _record(model, x, y, attack):
    """What identifies a stored set: the attack, the model and the data."""
    return {
        "attack": json.dumps(attack.settings(), sort_keys=True),
        "model_name": model.name,
        "model_sha256": _model_fingerprint(model),
        "data_sha256": _fingerprint(x, y),
    }


def _check_record(stored, record, path):
    changed = sorted(key for key in record if stored.get(key) != record[key])
    if changed:
        raise ValueError(
            f"{path} holds adversarial examples of another {', '.join(changed)}; "
            f"remove it or choose another path. Received: path={path!r}"
        )


def _checked_arrays(x, y):
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    if len(x) != len(y):
        raise ValueError(f"x and y differ in length. Received: len(x)={len(x)}, len(y)={len(y)}")
    return x, y


def generate_adversarial_examples(model, x, y, attack, path, chunk_size=500, jit_compile=None,
                                  progress=False):
    """Craft one untargeted adversarial example per image and store them in HDF5.

    The file holds ``adversarial_images`` (float32, like ``x``) and ``labels``
    and, as attributes, the attack settings (JSON), the model's name, SHA-256
    fingerprints of ``(x, y)`` and of the model's weights, and ``completed``,
    the number of examples written. Examples are written chunk by chunk and
    ``completed`` is advanced after each chunk is flushed, so an interrupted
    generation resumes where it stopped when called again with the same
    model, data and attack; anything else raises ``ValueError`` instead of
    mixing two sets.

    Args:
        model: the (pretrained, plain) Keras model to attack, in inference mode.
        x: float32 images ``[N, H, W, C]`` in [0, 1].
        y: int labels ``[N]``.
        attack: an ``AttackSpec``, or a mapping or ``AttackConfig`` of its
            settings: fgsm, pgd or stadv.
        path: the ``.h5`` file to write (folders are created).
        chunk_size: images attacked per call (one compiled graph per chunk size).
        jit_compile: compile the attack with XLA. On CPU, XLA's convolutions
            were 2-3× slower than TensorFlow's (oneDNN) for a ResNet-20 in
            our measurements: pass False there.
        progress: show a progress bar (images written, images per second).

    Returns:
        ``path``.
    """
    attack = training_attack(attack)
    x, y = _checked_arrays(x, y)
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1. Received: chunk_size={chunk_size}")
    record = _record(model, x, y, attack)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    _discard_if_damaged(path)
    with h5py.File(path, "a") as handle:
        if "completed" in handle.attrs:
            _check_record(dict(handle.attrs), record, path)
        else:
            # fletcher32: every chunk carries a checksum, so a damaged chunk fails to read.
            handle.create_dataset("adversarial_images", shape=x.shape, dtype="float32",
                                  chunks=(min(chunk_size, len(x)),) + x.shape[1:], fletcher32=True)
            handle.create_dataset("labels", data=y)
            handle.attrs.update(record)
            handle.attrs["tfadv_version"] = tfadv.__version__
            handle.attrs["completed"] = 0
        images = handle["adversarial_images"]
        first = int(handle.attrs["completed"])
        bar = None
        if progress and first < len(x):
            print(f"Writing the stored adversarial set: {attack.label}, {len(x)} images"
                  + (f", resuming at {first}" if first else "") + f" → {path}", flush=True)
            bar = keras.utils.Progbar(len(x), unit_name="image", stateful_metrics=["images/s"])
            bar.update(first)
        if first < len(x) and SSIM_RECORD_ATTRIBUTE in handle.attrs:
            del handle.attrs[SSIM_RECORD_ATTRIBUTE]  # the set changes: its 1 − SSIM is measured again
        started = time.perf_counter()
        for start in range(first, len(x), chunk_size):
            stop = min(start + chunk_size, len(x))
            # Chunk b's random starts come from (seed, b), so a resumed set equals an uninterrupted one.
            x_adv = attack.run(model, x[start:stop], y[start:stop], batch_index=start // chunk_size,
                               jit_compile=jit_compile)
            images[start:stop] = np.asarray(x_adv)
            handle.flush()
            handle.attrs["completed"] = stop
            handle.flush()
            if bar is not None:
                rate = (stop - first) / max(time.perf_counter() - started, 1e-9)
                bar.update(stop, [("images/s", rate)], finalize=stop == len(x))
    return path


def read_adversarial_examples(path, model, x, y, attack):
    """The stored adversarial images at ``path``, checked to be the complete set of
    ``model``, ``(x, y)`` and ``attack`` (``ValueError`` otherwise)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(
            f"No stored adversarial set at {path!r}: write it first with generate_adversarial_examples "
            f"(tfadv train does). Received: adversarial_examples={path!r}"
        )
    x, y = _checked_arrays(x, y)
    images, _, attributes = load_adversarial_examples(path)
    _check_record(attributes, _record(model, x, y, training_attack(attack)), path)
    return images


def _discard_if_damaged(path):
    """Recompute what of a stored set cannot be read back, with a warning (it is recomputable).

    A chunk whose bytes changed fails its fletcher32 checksum: ``completed``
    is moved back to that chunk, so generation redoes it and what follows
    (chunk b's random starts come from (seed, b), so the result is the same).
    A file that does not open (truncated) is removed and generated again.
    """
    if not os.path.exists(path):
        return
    try:
        with h5py.File(path, "r+") as handle:
            completed = int(handle.attrs.get("completed", 0))
            handle["labels"][...]
            images = handle["adversarial_images"]
            step = images.chunks[0] if images.chunks else max(1, completed)
            for start in range(0, completed, step):
                try:
                    images[start:min(start + step, completed)]
                except (OSError, ValueError, RuntimeError) as error:
                    warnings.warn(
                        f"{path}: examples {start}.. are damaged ({type(error).__name__}); "
                        f"generating them again from example {start}.", stacklevel=3)
                    handle.attrs["completed"] = start
                    break
    except (OSError, KeyError, ValueError, RuntimeError) as error:
        warnings.warn(f"{path} is damaged ({type(error).__name__}: {str(error).splitlines()[0][:200]}); "
                      "generating the stored adversarial set again.", stacklevel=3)
        os.remove(path)


STORED_SET_SUMMARY_KEY = "stored_adversarial_set"
"""Key of :func:`stored_set_ssim_distance`'s record in a fine-tuning run's ``summary.json``."""

SSIM_RECORD_ATTRIBUTE = "ssim_distance_record"
"""h5 attribute holding :func:`stored_set_ssim_distance`'s record of the complete set, so a
resumed run does not measure every stored image again; generation deletes it."""


def stored_set_ssim_distance(path, x, y, conventions=None, chunk_size=500):
    """Mean 1 − SSIM between the training images and their stored adversarial versions.

    The loss-landscape paper's Table 2 ("Data Augmented with": FGSM, PGD,
    stAdv) measures the augmentation set itself, every stored example, not a
    test-set attack. This reads the complete set from ``path`` (written by
    :func:`generate_adversarial_examples`), checks that it was crafted from
    ``(x, y)`` and averages over all of it, chunk by chunk.

    Args:
        path: the ``.h5`` stored set.
        x, y: the clean training images and labels it was crafted from.
        conventions: names of :data:`tfadv.metrics.CONVENTIONS` (default all).
        chunk_size: images per SSIM call.

    Returns:
        ``{"population": "stored training set (all)", "attack": {settings},
        "num_examples": N, "ssim_distance": {convention: mean}}``.

    Raises:
        ValueError: the set is incomplete or was crafted from other data.
    """
    from tfadv.metrics import CONVENTIONS, ssim_distance

    conventions = list(CONVENTIONS) if conventions is None else list(conventions)
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    with h5py.File(path, "r") as handle:
        attributes = dict(handle.attrs)
    cached = json.loads(attributes[SSIM_RECORD_ATTRIBUTE]) if SSIM_RECORD_ATTRIBUTE in attributes else None
    if (cached is not None and attributes.get("data_sha256") == _fingerprint(x, y)
            and set(conventions) <= set(cached["ssim_distance"])):
        return {**cached, "ssim_distance": {name: cached["ssim_distance"][name] for name in conventions}}
    with h5py.File(path, "r") as handle:
        images = handle["adversarial_images"]
        if attributes.get("completed") != len(images):
            raise ValueError(f"{path} is incomplete ({attributes.get('completed')} of {len(images)} examples). "
                             f"Received: path={path!r}")
        if attributes.get("data_sha256") != _fingerprint(x, y):
            raise ValueError(f"{path} was crafted from other training images than x, y. Received: path={path!r}")
        totals = dict.fromkeys(conventions, 0.0)
        for start in range(0, len(x), chunk_size):
            x_adv = images[start:start + chunk_size]
            for name in conventions:
                totals[name] += float(ssim_distance(x[start:start + chunk_size], x_adv, convention=name)
                                      .per_image.sum())
    record = {
        "population": "stored training set (all)",
        "attack": json.loads(attributes["attack"]),
        "num_examples": int(len(x)),
        "ssim_distance": {name: total / max(len(x), 1) for name, total in totals.items()},
    }
    with h5py.File(path, "a") as handle:
        handle.attrs[SSIM_RECORD_ATTRIBUTE] = json.dumps(record)
    return record


def load_adversarial_examples(path):
    """``(adversarial_images, labels, attributes)`` of a complete stored set."""
    with h5py.File(path, "r") as handle:
        attributes = dict(handle.attrs)
        total = handle["labels"].shape[0]
        if attributes.get("completed") != total:
            raise ValueError(
                f"{path} is incomplete ({attributes.get('completed')} of {total} examples); "
                f"run generate_adversarial_examples again to finish it. Received: path={path!r}"
            )
        return handle["adversarial_images"][...], handle["labels"][...], attributes


class OfflineFineTuning(TrainingMethod):
    """Fine-tune on the union of the clean images and their stored adversarial versions.

    The training data is the 2N examples ``{(x_i, y_i)} ∪ {(x_adv_i, y_i)}``,
    shuffled together (:meth:`training_dataset`; no augmentation, which would
    alter the stored perturbations), and each step is plain supervised
    training, ``loss = mean CE(f_θ(batch), y)`` in training mode. The inputs
    are ``{"images": [B, H, W, C], "adversarial": [B]}``; the flag only splits
    the metrics: ``accuracy`` over the clean examples of the batch and
    ``robust_accuracy`` over the stored adversarial ones. Validation
    (``test_step``) attacks the current model with the same attack. One
    epoch over the union is ``examples_per_epoch = 2N`` examples.

    Args:
        inner: the plain pretrained model.
        attack: the attack that made the stored set (and that validation uses).
        x, y: the clean training images and labels.
        adversarial_images: the stored adversarial images, aligned with ``x``.
    """

    def __init__(self, inner, attack, x, y, adversarial_images, **kwargs):
        super().__init__(inner, eval_attack=attack, **kwargs)
        if self.conditioned:
            raise ValueError(f"Fine-tuning needs a plain model. Received: inner={inner.name!r}")
        if np.shape(adversarial_images) != np.shape(x) or len(y) != len(x):
            raise ValueError(
                "x, y and adversarial_images must be aligned. Received: "
                f"x.shape={np.shape(x)}, len(y)={len(y)}, adversarial_images.shape={np.shape(adversarial_images)}"
            )
        self.x, self.y, self.adversarial_images = x, y, adversarial_images
        self.examples_per_epoch = 2 * len(x)  # one pass over the union

    def training_dataset(self, batch_size, seed=0, start=0):
        """Shuffled, repeated batches of the 1:1 clean+adversarial union, from stream position ``start``.

        The stream is :func:`tfadv.data.make_dataset`'s: position i depends on
        (seed, i) only, so a resumed run continues it exactly.
        """
        from tfadv.data import make_dataset

        images = np.concatenate([self.x, self.adversarial_images])
        labels = np.concatenate([self.y, self.y]).astype(np.int64)
        flags = np.repeat(np.array([0.0, 1.0], np.float32), len(self.x))
        return make_dataset({IMAGES: images, ADVERSARIAL: flags}, labels, batch_size, shuffle=True,
                            seed=seed, drop_remainder=True, repeat=True, start=start)

    def train_step(self, data):
        inputs, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        images, adversarial = inputs[IMAGES], tf.cast(inputs[ADVERSARIAL], tf.float32)
        with tf.GradientTape() as tape:
            logits = self.inner(images, training=True)
            loss = cross_entropy(y, logits, sample_weight)
            objective = self.objective(loss)
        self.apply_update(tape, objective)
        weights = tf.ones_like(adversarial) if sample_weight is None else tf.cast(sample_weight, tf.float32)
        self.loss_tracker.update_state(loss, sample_weight=tf.shape(images)[0])
        self.accuracy_tracker.update_state(y, logits, weights * (1.0 - adversarial))
        self.robust_accuracy_tracker.update_state(y, logits, weights * adversarial)
        return self.results()
