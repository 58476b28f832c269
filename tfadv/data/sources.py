"""One loading API for every dataset tfadv knows.

``load_arrays(source, split)`` returns ``x`` float32 [N, H, W, C] in [0, 1] and
``y`` int64 [N], whatever the source:

- ``"digits"``: scikit-learn's bundled 8×8 handwritten digits (no network),
  resized to 32×32 and repeated to 3 channels; a fixed, stratified 80/20 split.
- ``"cifar10"`` / ``"cifar100"``: through tensorflow-datasets (``data_dir``
  honoured; downloads only where the network allows).
- a path to a CIFAR python archive (``cifar-10-python.tar.gz``) or its folder.
- a path to an ``.npz`` with keys ``x`` (uint8 0..255 or float in [0, 1]) and ``y``,
  optionally ``label_names`` (one name per class: it declares the class count).

**Classes.** The number of classes is declared, not guessed:
:func:`declared_num_classes` takes it from the file's ``label_names`` when it
has them, else from the caller's ``num_classes`` (``data.num_classes`` in a
config), else from the dataset (10 for digits and CIFAR-10, 100 for
CIFAR-100). A label outside the declared classes is refused when the data are
loaded, before any work. Only an ``.npz`` declaring nothing has its count
inferred from the labels (max + 1), with a warning naming the classes that
have no example (:func:`dataset_info`).
"""
import os
import warnings

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


def npz_label_names(path):
    """The ``label_names`` an ``.npz`` declares (a list of str), or None when it has none."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if "label_names" not in data.files:
                return None
            names = np.asarray(data["label_names"]).reshape(-1)
    except (OSError, ValueError, EOFError) as err:
        raise DatasetNotFoundError(f"Could not read {path!r} as an .npz file: {err}") from err
    if len(names) < 1:
        raise DatasetNotFoundError(f"{path!r}: label_names is empty; it must name every class")
    return [str(name) for name in names]


# Classes of the named datasets (the CIFAR archives are CIFAR-10's or CIFAR-100's).
_NAMED_CLASSES = {"digits": 10, "cifar10": 10, "cifar100": 100}


def declared_num_classes(source, num_classes=None):
    """The class count ``source`` declares: its ``label_names``, else ``num_classes``, else the dataset's.

    Args:
        source: a dataset source (see :func:`load_arrays`).
        num_classes: the count the user states (``data.num_classes``), or None.

    Returns:
        The count, or None when nothing declares it (an ``.npz`` without
        ``label_names`` and no ``num_classes``): then it is inferred from the
        labels by :func:`dataset_info`.

    Raises:
        ValueError: ``num_classes`` below 2, or different from the file's ``label_names``.
    """
    if num_classes is not None and (isinstance(num_classes, bool) or int(num_classes) != num_classes
                                    or num_classes < 2):
        raise ValueError(f"num_classes must be an integer >= 2. Received: num_classes={num_classes!r}")
    source = os.fspath(source)
    declared = None
    if source.endswith(".npz") and os.path.exists(source):
        names = npz_label_names(source)
        declared = None if names is None else len(names)
        if declared is not None and num_classes is not None and int(num_classes) != declared:
            raise ValueError(
                f"{source}: label_names declares {declared} classes but num_classes={num_classes}; "
                "remove one of them")
    elif source in _NAMED_CLASSES:
        declared = _NAMED_CLASSES[source]
    if declared is None and num_classes is not None:
        declared = int(num_classes)
    return declared


def load_npz_arrays(path, split="train", num_classes=None):
    """An ``.npz`` with ``x_train``/``y_train`` and ``x_test``/``y_test``, or ``x``/``y``.

    A file with only ``x``/``y`` is split deterministically: a fixed stratified
    20% is the test split, the rest the training split. Labels must lie in
    ``0..num_classes-1`` when the count is declared (see
    :func:`declared_num_classes`).
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
    check_arrays(x, y, path, x_key, y_key, declared_num_classes(path, num_classes))
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


def load_arrays(source="digits", split="train", data_dir=None, num_classes=None):
    """Load a dataset as ``(x float32 [N, H, W, C] in [0, 1], y int64 [N])``.

    Args:
        source: ``"digits"``, ``"cifar10"``, ``"cifar100"``, a path to a CIFAR
            python archive or its folder, or a path to an ``.npz``.
        split: ``"train"`` or ``"test"``.
        data_dir: where tensorflow-datasets keeps its data (named CIFAR sources).
        num_classes: the class count the user declares (``data.num_classes``);
            an ``.npz``'s ``label_names`` take precedence (a different count
            is an error). Labels outside the declared classes raise
            :class:`InvalidDataError` naming the file, the key and the value.
    """
    _check_split(split)
    source = os.fspath(source)
    declared = declared_num_classes(source, num_classes) if _exists_or_named(source) else num_classes
    x, y = _load_unchecked(source, split, data_dir, num_classes)
    check_arrays(x, y, f"{source} ({split})", num_classes=declared)
    return x, y


def _exists_or_named(source):
    return source in NAMED_SOURCES or os.path.exists(source)


def _load_unchecked(source, split, data_dir, num_classes=None):
    if source == "digits":
        return load_digits_arrays(split)
    if source in ("cifar10", "cifar100"):
        return load_tfds_arrays(source, split, data_dir)
    if source.endswith(".npz"):
        if not os.path.exists(source):
            raise DatasetNotFoundError(
                f"No dataset file at {source!r}. Pass an existing .npz with keys 'x' and 'y'."
            )
        return load_npz_arrays(source, split, num_classes)
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


def dataset_info(x, y, num_classes=None, source=None):
    """Shape facts a model needs: input shape and number of classes.

    The class count is the declared one (:func:`declared_num_classes` of
    ``source`` and ``num_classes``); when nothing declares it, it is max label
    + 1, with a warning naming the classes that have no example in ``y``.
    """
    declared = num_classes if source is None else declared_num_classes(source, num_classes)
    y = np.asarray(y).reshape(-1)
    if declared is None:
        declared = int(y.max()) + 1
        missing = sorted(set(range(declared)) - set(int(v) for v in np.unique(y)))
        if missing:
            shown = ", ".join(str(c) for c in missing[:20]) + (", ..." if len(missing) > 20 else "")
            warnings.warn(
                f"{source or 'the data'}: {declared} classes inferred from the labels (max + 1) but "
                f"classes {shown} have no training example; declare the classes with the file's "
                "label_names or data.num_classes", stacklevel=2)
    return {"input_shape": tuple(int(d) for d in x.shape[1:]), "num_classes": int(declared)}


def channel_stats(x):
    """Per-channel mean and standard deviation of images in [0, 1]."""
    x = np.asarray(x, dtype=np.float64)
    return x.mean(axis=(0, 1, 2)).astype(np.float32), x.std(axis=(0, 1, 2)).astype(np.float32)
