"""Checks of image and label arrays, before any work is done with them.

Every loader runs :func:`check_arrays` on what it read, and ``tfadv train``,
``eval`` and ``landscape`` run :func:`check_compatible` against the model,
so a bad dataset stops the command at once with one line naming the file,
the key and the offending value (``data.npz: y has label 12 outside 0..9 at
index 37``), instead of a NaN loss or a shape error an hour later.

Both raise :class:`InvalidDataError`, a ``ValueError`` (the CLI prints it and
exits with code 2).
"""
import numpy as np


class InvalidDataError(ValueError):
    """Images or labels that tfadv cannot use; the message names the file, key and value."""


def _first_index(mask):
    """The image index of the first True of a boolean array whose axis 0 is the image."""
    return int(np.unravel_index(int(np.argmax(mask)), mask.shape)[0])


def check_images(x, where, key="x"):
    """``x`` must be images ``[N, H, W, C]``: uint8 0..255 or float in [0, 1], finite, N ≥ 1.

    Args:
        x: the array as read (before conversion to float).
        where: the file or source it came from (first word of the message).
        key: its name in the file (``x``, ``x_train``…).
    """
    x = np.asarray(x)
    if x.ndim != 4:
        per_image = "x" .join(str(d) for d in x.shape[1:]) or "scalars"
        raise InvalidDataError(
            f"{where}: {key} must hold 3-D images [N, H, W, C]; its images are "
            f"{x.ndim - 1}-D ({per_image}). Received: {key}.shape={x.shape}")
    if len(x) == 0:
        raise InvalidDataError(f"{where}: {key} is empty (no images). Received: {key}.shape={x.shape}")
    if x.dtype == np.bool_ or not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise InvalidDataError(
            f"{where}: {key} must be uint8 0..255 or float in [0, 1]. Received: {key}.dtype={x.dtype}")
    if np.issubdtype(x.dtype, np.integer):
        bad = (x < 0) | (x > 255)
        if bad.any():
            index = _first_index(bad)
            value = x[index][bad[index]].flat[0]
            raise InvalidDataError(
                f"{where}: {key} has integer pixel {value} outside 0..255 at index {index}")
        return
    finite = np.isfinite(x)
    if not finite.all():
        index = _first_index(~finite)
        value = x[index][~finite[index]].flat[0]
        raise InvalidDataError(f"{where}: {key} has pixel {value} (not finite) at index {index}")
    bad = (x < 0.0) | (x > 1.0)
    if bad.any():
        index = _first_index(bad)
        value = x[index][bad[index]].flat[0]
        raise InvalidDataError(
            f"{where}: {key} has float pixel {float(value):.6g} outside [0, 1] at index {index} "
            f"(range [{float(x.min()):.6g}, {float(x.max()):.6g}]); store uint8 0..255 or "
            "floats divided by 255")


def check_labels(y, where, key="y", num_classes=None):
    """``y`` must be whole class numbers in ``0..num_classes-1`` (≥ 0 when unknown), N ≥ 1."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise InvalidDataError(
            f"{where}: {key} must be class numbers [N] (not one-hot). Received: {key}.shape={y.shape}")
    if len(y) == 0:
        raise InvalidDataError(f"{where}: {key} is empty (no labels)")
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)) \
            or y.dtype == np.bool_:
        raise InvalidDataError(f"{where}: {key} must hold class numbers. Received: {key}.dtype={y.dtype}")
    if np.issubdtype(y.dtype, np.floating):
        whole = np.isfinite(y) & (y == np.round(y))
        if not whole.all():
            index = int(np.argmax(~whole))
            raise InvalidDataError(
                f"{where}: {key} has label {y[index]!r}, not a whole class number, at index {index}")
    upper = "" if num_classes is None else str(num_classes - 1)
    bad = (y < 0) if num_classes is None else ((y < 0) | (y >= num_classes))
    if bad.any():
        index = int(np.argmax(bad))
        label = y[index].item()
        label = int(label) if float(label).is_integer() else label
        raise InvalidDataError(f"{where}: {key} has label {label} outside 0..{upper} at index {index}")


def check_arrays(x, y, where, x_key="x", y_key="y", num_classes=None):
    """:func:`check_images` and :func:`check_labels`, and as many labels as images."""
    check_images(x, where, x_key)
    check_labels(y, where, y_key, num_classes)
    if len(x) != len(np.asarray(y)):
        raise InvalidDataError(
            f"{where}: {x_key} has {len(x)} images but {y_key} has {len(np.asarray(y))} labels")


def check_compatible(x, y, input_shape, num_classes, where, model="the model"):
    """The data fit the model: image shape equals ``input_shape``, labels ``< num_classes``.

    Args:
        x, y: the loaded arrays (``[N, H, W, C]``, ``[N]``).
        input_shape: the model's image shape ``(H, W, C)`` (``None`` entries match anything).
        num_classes: the model's number of outputs.
        where: the data's source, for the message.
        model: the model's name or path, for the message.
    """
    if len(x) == 0:
        raise InvalidDataError(f"{where}: the split is empty (no images)")
    image_shape = tuple(int(d) for d in np.shape(x)[1:])
    expected = tuple(input_shape)
    if len(expected) != len(image_shape) or any(
            e is not None and int(e) != d for e, d in zip(expected, image_shape)):
        what = "channels" if expected[:-1] == image_shape[:-1] else "image shape"
        raise InvalidDataError(
            f"{where}: images are {image_shape} but {model} takes {expected} ({what} differ)")
    check_labels(y, where, "y", num_classes)


def model_image_shape(model):
    """``(H, W, C)`` of a Keras model's image input (the ``images`` input of a conditioned model)."""
    inputs = list(getattr(model, "inputs", None) or [])
    if len(inputs) > 1:
        named = [t for t in inputs if getattr(t, "name", "").split(":")[0].startswith("images")]
        inputs = named or inputs
    return tuple(inputs[0].shape[1:]) if inputs else None


def check_model_data(model, x, y, where, model_name=None):
    """:func:`check_compatible` with the image shape and class count read from a Keras model."""
    image_shape = model_image_shape(model)
    outputs = getattr(model, "outputs", None) or []
    num_classes = int(outputs[0].shape[-1]) if outputs and outputs[0].shape[-1] is not None else None
    if image_shape is None:
        check_labels(y, where, "y", num_classes)
        return
    check_compatible(x, y, image_shape, num_classes, where, model_name or f"model {model.name!r}")
