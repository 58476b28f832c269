"""One loading API for every dataset tfadv knows.

``load_arrays(source, split)`` returns ``x`` float32 [N, H, W, C] in [0, 1] and
``y`` int64 [N], whatever the source:

- ``"digits"``: scikit-learn's bundled 8×8 handwritten digits (no network),
  resized to 32×32 and repeated to 3 channels; a fixed, stratified 80/20 split.
- ``"cifar10"`` / ``"cifar100"``: through tensorflow-datasets (``data_dir``
  honoured; downloads only where the network allows).
- a path to a CIFAR python archive (``cifar-10-python.tar.gz``) or its folder.
- a path to an ``.npz`` with keys ``x`` (uint8 0..255 or float in [0, 1]) and ``y``.
"""
import os

import numpy as np

from tfadv.data.cifar_archive import load_cifar_archive
from tfadv.data.validation import check_arrays

SPLITS = ("train", "test")
NAMED_SOURCES = ("digits", "cifar10", "cifar100")


class DatasetNotFoundError(ValueError):
    """A dataset could not be found or read; the message says how to provide it."""


def _check_split(split):
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}. Received: split={split!r}")


def _to_unit_float(x, where):
    x = np.asarray(x)
    if np.issubdtype(x.dtype, np.integer):
        if x.min(initial=0) < 0 or x.max(initial=0) > 255:
            raise ValueError(f"{where}: integer images must be in 0..255")
        return (x.astype(np.float32) / 255.0)
    x = x.astype(np.float32)
    if x.size and (x.min() < 0.0 or x.max() > 1.0):
        raise ValueError(
            f"{where}: float images must be in [0, 1]. Received range "
            f"[{x.min():.4g}, {x.max():.4g}]"
        )
    return x


def _as_nhwc(x, where):
    if x.ndim == 3:  # grayscale without a channel axis
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"{where}: images must be [N, H, W, C]. Received shape {x.shape}")
    return x


def load_digits_arrays(split="train", size=32, test_fraction=0.2):
    """scikit-learn's digits as 32×32×3 images in [0, 1] with a fixed stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)  # pixel values are 0..16
    labels = digits.target.astype(np.int64)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, random_state=0, stratify=labels
    )
    idx = train_idx if split == "train" else test_idx
    # Nearest-neighbour upsampling (8 -> 32 is an integer factor): exact and dependency-free.
    factor = size // images.shape[1]
    x = np.repeat(np.repeat(images[idx], factor, axis=1), factor, axis=2)
    x = np.repeat(x[..., None], 3, axis=-1)
    return np.ascontiguousarray(x), labels[idx]


def _holdout_split(x, y, split, test_fraction=0.2):
    from sklearn.model_selection import train_test_split

    labels = y.reshape(-1)
    counts = np.bincount(labels.astype(np.int64)) if labels.size else np.array([])
    classes = int((counts > 0).sum())
    test_count = int(np.ceil(test_fraction * len(labels)))
    # Stratifying needs two examples of every class and room for each class in both splits.
    stratifiable = counts.size and counts[counts > 0].min() >= 2 and \
        min(test_count, len(labels) - test_count) >= classes
    stratify = labels if stratifiable else None
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, random_state=0, stratify=stratify
    )
    idx = np.sort(train_idx if split == "train" else test_idx)
    return x[idx], y[idx]


def load_npz_arrays(path, split="train"):
    """An ``.npz`` with ``x_train``/``y_train`` and ``x_test``/``y_test``, or ``x``/``y``.

    A file with only ``x``/``y`` is split deterministically: a fixed stratified
    20% is the test split, the rest the training split.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = set(data.files)
            if f"x_{split}" in keys and f"y_{split}" in keys:
                x_key, y_key, held_out = f"x_{split}", f"y_{split}", False
            elif "x" in keys and "y" in keys:
                x_key, y_key, held_out = "x", "y", True
            else:
                raise DatasetNotFoundError(
                    f"{path!r} has keys {sorted(keys)}; expected 'x' and 'y' "
                    f"(or 'x_{split}' and 'y_{split}')"
                )
            x, y = np.asarray(data[x_key]), np.asarray(data[y_key])
    except (OSError, ValueError, EOFError) as err:
        if isinstance(err, DatasetNotFoundError):
            raise
        raise DatasetNotFoundError(f"Could not read {path!r} as an .npz file: {err}") from err
    if x.ndim == 3:  # grayscale without a channel axis
        x = x[..., None]
    # Checked as stored, before the hold-out split, so indices in messages are the file's.
    check_arrays(x, y, path, x_key, y_key)
    y = y.astype(np.int64).reshape(-1)
    if held_out:
        # One array for both splits: hold out a fixed stratified 20% as "test".
        x, y = _holdout_split(x, y, split)
    return _to_unit_float(x, path), y


def load_tfds_arrays(name, split="train", data_dir=None):
    """CIFAR-10/100 through tensorflow-datasets, as NumPy arrays."""
    import tensorflow_datasets as tfds

    try:
        images, labels = tfds.as_numpy(
            tfds.load(name, split=split, as_supervised=True, batch_size=-1, data_dir=data_dir)
        )
    except Exception as err:  # TFDS raises many kinds: network, missing files, checksum
        raise DatasetNotFoundError(
            f"Could not load {name!r} ({split}) with tensorflow-datasets"
            f"{' from ' + repr(data_dir) if data_dir else ''}: {type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}\n"
            f"Provide it one of these ways: run once where the network allows so TFDS caches it "
            f"(then pass data_dir), point the source at a local 'cifar-10-python.tar.gz' "
            f"or its extracted folder, or at an .npz with keys x, y. "
            f"The offline default is source='digits'."
        ) from err
    return _to_unit_float(images, name), labels.astype(np.int64)


def load_arrays(source="digits", split="train", data_dir=None):
    """Load a dataset as ``(x float32 [N, H, W, C] in [0, 1], y int64 [N])``.

    Args:
        source: ``"digits"``, ``"cifar10"``, ``"cifar100"``, a path to a CIFAR
            python archive or its folder, or a path to an ``.npz``.
        split: ``"train"`` or ``"test"``.
        data_dir: where tensorflow-datasets keeps its data (named CIFAR sources).
    """
    _check_split(split)
    source = os.fspath(source)
    x, y = _load_unchecked(source, split, data_dir)
    check_arrays(x, y, f"{source} ({split})")
    return x, y


def _load_unchecked(source, split, data_dir):
    if source == "digits":
        return load_digits_arrays(split)
    if source in ("cifar10", "cifar100"):
        return load_tfds_arrays(source, split, data_dir)
    if source.endswith(".npz"):
        if not os.path.exists(source):
            raise DatasetNotFoundError(
                f"No dataset file at {source!r}. Pass an existing .npz with keys 'x' and 'y'."
            )
        return load_npz_arrays(source, split)
    if os.path.exists(source):
        try:
            x, y = load_cifar_archive(source, split)
        except (OSError, EOFError, KeyError) as err:
            raise DatasetNotFoundError(f"Could not read the CIFAR archive {source!r}: {err}") from err
        return _to_unit_float(x, source), y
    raise DatasetNotFoundError(
        f"Unknown dataset source {source!r}: not one of {NAMED_SOURCES} and no file or folder "
        "by that name. Use 'digits' (offline), 'cifar10'/'cifar100' (tensorflow-datasets), a "
        "CIFAR python archive or folder, or an .npz with keys x, y."
    )


def dataset_info(x, y):
    """Shape facts a model needs: input shape and number of classes."""
    return {"input_shape": tuple(int(d) for d in x.shape[1:]), "num_classes": int(y.max()) + 1}


def channel_stats(x):
    """Per-channel mean and standard deviation of images in [0, 1]."""
    x = np.asarray(x, dtype=np.float64)
    return x.mean(axis=(0, 1, 2)).astype(np.float32), x.std(axis=(0, 1, 2)).astype(np.float32)
