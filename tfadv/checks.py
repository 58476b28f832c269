"""The value checks every part of tfadv shares, with one message each.

Each check raises ``ValueError`` naming the argument and the value received
(``"eps must be in [0, 1]. Received: eps=1.5"``), which the CLI prints as one
line. This module imports nothing of tfadv, so any package may use it.

Two families:

- checks of *settings* (Python or NumPy numbers): :func:`check_integer`,
  :func:`check_strength`;
- checks of values that may be tensors (:func:`check_in_unit_interval`,
  :func:`check_positive`, :func:`check_non_negative`, :func:`check_count`):
  only values known now are checked (Python numbers, NumPy arrays, eager
  tensors, graph constants); a symbolic tensor inside a ``tf.function``
  passes through unchecked instead of breaking the graph.
"""

import numbers

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
    import re

    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if match:
        index, count = int(match.group(1)), int(match.group(2))
        if count >= 1 and 0 <= index < count:
            return index, count
    raise ValueError(f"{name} must look like I/N with 0 <= I < N (e.g. 0/2). Received: {name}={text!r}")
