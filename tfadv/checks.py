"""The value checks every part of tfadv shares, with one message each.

Each check raises ``ValueError`` naming the argument and the value received
(``"eps must be in [0, 1]. Received: eps=1.5"``), which the CLI prints as one
line. This module imports nothing of tfadv, so any package may use it.

Three families:

- checks of *settings* (Python or NumPy numbers, names): :func:`check_integer`,
  :func:`check_strength`, :func:`check_in_interval`, :func:`check_choice`, and
  the one parser of numbers written as fractions, :func:`parse_number`
  (``"8/255"``), and of shards, :func:`parse_shard` / :func:`resolve_shard`;
- checks of values that may be tensors (:func:`check_in_unit_interval`,
  :func:`check_positive`, :func:`check_non_negative`, :func:`check_count`):
  only values known now are checked (Python numbers, NumPy arrays, eager
  tensors, graph constants); a symbolic tensor inside a ``tf.function``
  passes through unchecked instead of breaking the graph;
- checks of the batches an attack receives (:func:`check_images`,
  :func:`check_labels`, :func:`check_per_example`, :func:`check_linf_inputs`).
"""

import fractions
import math
import numbers
import os
import re

import numpy as np
import tensorflow as tf


def known_value(value):
    """``value`` as a NumPy array if it is known now, else ``None``."""
    if value is None:
        return None
    try:
        array = tf.get_static_value(value)
    except (TypeError, ValueError):
        return None
    return None if array is None else np.asarray(array)


def describe(value):
    """How a message shows a value: a scalar's repr, an array's shape, else ``repr``."""
    array = known_value(value)
    if array is None:
        return repr(value)
    return repr(array.item()) if np.ndim(array) == 0 else f"array(shape={array.shape})"


def is_integer(value):
    """True for Python and NumPy integers, False for booleans and everything else."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


# ------------------------------------------------------------------ settings


def parse_number(value):
    """``value`` as a finite float, or ``None`` if it is not a number.

    Strings may be fractions, as papers write strengths: ``"8/255"``, and
    ``"0.3/64"`` (a decimal numerator); ``"0.03"`` and ``"1e-3"`` too.
    Booleans are not numbers. The one parser of such strings in tfadv (configs,
    attack settings, the command line).
    """
    if isinstance(value, str):
        try:
            return float(fractions.Fraction(value.strip()))
        except (ValueError, ZeroDivisionError):
            pass
        # Fraction refuses a decimal numerator such as the paper's "0.3/64".
        numerator, slash, denominator = value.partition("/")
        try:
            number = float(numerator) / float(denominator) if slash else None
        except (ValueError, ZeroDivisionError):
            return None
        return number if number is not None and math.isfinite(number) else None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        return None
    return float(value) if math.isfinite(value) else None


def check_choice(name, value, choices):
    """``value`` unless it is not one of ``choices``: ``ValueError`` listing them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}. "
                         f"Received: {name}={value!r}")
    return value


def check_in_interval(name, value, low=0.0, high=1.0, low_open=False, or_none=False):
    """``ValueError`` unless ``low <= value <= high`` (``low < value`` if ``low_open``).

    With ``or_none`` the value may also be None (the message says so).
    """
    if or_none and value is None:
        return value
    number = parse_number(value) if not isinstance(value, str) else None
    inside = number is not None and (low < number if low_open else low <= number) and number <= high
    if not inside:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise ValueError(f"{name} must be {'None or ' if or_none else ''}in {interval}. "
                         f"Received: {name}={value!r}")
    return value


def check_integer(name, value, minimum=1):
    """``value`` as an ``int``, else ``ValueError`` unless it is an integer >= ``minimum``."""
    if not is_integer(value) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}. Received: {name}={value!r}")
    return int(value)


def check_strength(name, value):
    """``value`` as a float in [0, 1] (a masking strength p), else ``ValueError``.

    Numbers, NumPy scalars and scalar tensors are accepted; booleans and
    strings are not.
    """
    try:
        strength = float("nan") if isinstance(value, (bool, np.bool_, str)) else float(value)
    except (TypeError, ValueError):
        strength = float("nan")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1]. Received: {name}={value!r}")
    return strength


# ------------------------------------------------------------------ tensors


def check_in_unit_interval(name, value, received=None):
    """``ValueError`` unless every element of ``value`` is in [0, 1].

    ``received`` replaces the shown value (e.g. the string a number was parsed from).
    """
    array = known_value(value)
    if array is not None and not (np.all(np.isfinite(array)) and np.all((array >= 0) & (array <= 1))):
        shown = describe(value) if received is None else received
        raise ValueError(f"{name} must be in [0, 1]. Received: {name}={shown}")


def check_positive(name, value):
    """``ValueError`` unless every element of ``value`` is finite and > 0."""
    array = known_value(value)
    if array is not None and not (np.all(np.isfinite(array)) and np.all(array > 0)):
        raise ValueError(f"{name} must be > 0. Received: {name}={describe(value)}")


def check_non_negative(name, value):
    """``ValueError`` unless every element of ``value`` is finite and >= 0."""
    array = known_value(value)
    if array is not None and not (np.all(np.isfinite(array)) and np.all(array >= 0)):
        raise ValueError(f"{name} must be >= 0. Received: {name}={describe(value)}")


def check_count(name, value, minimum=1):
    """``ValueError`` unless ``value`` (a number or an integer tensor) is an integer >= ``minimum``."""
    array = known_value(value)
    if array is None:
        return
    integer = np.issubdtype(np.asarray(array).dtype, np.integer) and not isinstance(value, bool)
    if not integer or np.ndim(array) != 0 or array < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}. Received: {name}={describe(value)}")


def parse_shard(text, name="shard"):
    """``"I/N"`` → ``(I, N)`` with ``0 <= I < N`` (shard I of N); ``ValueError`` naming ``name`` otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if match:
        index, count = int(match.group(1)), int(match.group(2))
        if count >= 1 and 0 <= index < count:
            return index, count
    raise ValueError(f"{name} must look like I/N with 0 <= I < N (e.g. 0/2). Received: {name}={text!r}")


def check_image_arrays(x, y):
    """``(x, y)`` as float32 images ``[N, H, W, C]`` in [0, 1] and int64 labels ``[N]``;
    ``ValueError`` if they are not (or empty): what evaluation takes."""
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 4 or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"x must be float images [N, H, W, C] in [0, 1]. Received: x.shape={x.shape}, dtype={x.dtype}")
    if len(x) == 0:
        raise ValueError("x is empty: nothing to evaluate.")
    if x.min() < 0 or x.max() > 1:
        raise ValueError(f"x must be in [0, 1]. Received: x in [{x.min():.4g}, {x.max():.4g}]")
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must hold one integer label per image. Received: y.shape={y.shape}, x.shape={x.shape}")
    return x.astype(np.float32, copy=False), y.astype(np.int64, copy=False)


# ------------------------------------------------------------------ attack inputs
# Only values known now are checked; a symbolic tensor inside a tf.function
# passes through unchecked.


def _shape(value):
    shape = getattr(value, "shape", None)
    return tf.TensorShape(np.shape(value) if shape is None else shape)


def _dtype(value):
    dtype = getattr(value, "dtype", None)
    return tf.as_dtype(np.asarray(value).dtype if dtype is None else dtype)


def check_images(x, name="x"):
    """``ValueError`` unless ``x`` is a float batch ``[B, H, W, C]`` in [0, 1]."""
    shape = _shape(x)
    if shape.rank is not None and shape.rank != 4:
        raise ValueError(f"{name} must be a batch of images [B, H, W, C]. Received: {name}.shape={shape}")
    dtype = _dtype(x)
    if not dtype.is_floating:
        raise ValueError(f"{name} must be floating point in [0, 1]. Received: {name}.dtype={dtype.name}")
    array = known_value(x)
    if array is not None and array.size and not (np.all(array >= 0) and np.all(array <= 1)):
        raise ValueError(
            f"{name} must be images in [0, 1]. Received: {name} with values in "
            f"[{np.nanmin(array):.4g}, {np.nanmax(array):.4g}]"
            + (" and NaN" if np.isnan(array).any() else "")
        )


def check_labels(x, y, name="y"):
    """``ValueError`` unless ``y`` is an integer vector with one label per image of ``x``."""
    shape = _shape(y)
    dtype = _dtype(y)
    if not dtype.is_integer:
        raise ValueError(f"{name} must hold integer class labels. Received: {name}.dtype={dtype.name}")
    if shape.rank is not None and shape.rank != 1:
        raise ValueError(f"{name} must be a vector [B] of labels. Received: {name}.shape={shape}")
    batch = _shape(x)[0]
    if batch is not None and shape[0] is not None and batch != shape[0]:
        raise ValueError(
            f"x and {name} must have the same batch size. "
            f"Received: x.shape[0]={batch}, {name}.shape[0]={shape[0]}"
        )


def check_per_example(name, value, x):
    """``ValueError`` unless ``value`` is a scalar or a vector [B] matching ``x``."""
    shape = _shape(value)
    batch = _shape(x)[0]
    if shape.rank is None or shape.rank == 0:
        return
    if shape.rank != 1 or (batch is not None and shape[0] is not None and shape[0] != batch):
        raise ValueError(
            f"{name} must be a scalar or a vector with one value per image. "
            f"Received: {name}.shape={shape}, x.shape[0]={batch}"
        )


def check_linf_inputs(x, y, eps):
    """The checks every L∞ attack starts with: images, labels, ε in [0, 1] (scalar or per example)."""
    check_images(x)
    check_labels(x, y)
    check_in_unit_interval("eps", eps)
    check_per_example("eps", eps, x)
