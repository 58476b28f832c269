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
    raise ValueError(f"{name} must look like I/N with 0 <= I < N (e.g. 0/2), or auto, auto/N "
                     f"(from a Slurm array or Kubernetes Indexed Job). Received: {name}={text!r}")


SLURM_ARRAY_VARIABLES = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT")
"""What a Slurm array job sets in each task (with ``SLURM_ARRAY_TASK_MIN`` / ``_STEP``)."""
KUBERNETES_INDEX_VARIABLE = "JOB_COMPLETION_INDEX"
"""What a Kubernetes Indexed Job sets in each pod (the count is the Job's ``completions``)."""


def _environment_integer(environ, variable):
    text = environ.get(variable)
    try:
        return int(text)
    except (TypeError, ValueError):
        raise ValueError(f"{variable} must be an integer. Received: {variable}={text!r}") from None


def shard_from_environment(count=None, name="shard", environ=None):
    """``(I, N)`` of this job in a Slurm array job or a Kubernetes Indexed Job.

    - Slurm (``sbatch --array=0-3``): I = ``SLURM_ARRAY_TASK_ID`` −
      ``SLURM_ARRAY_TASK_MIN`` (divided by ``SLURM_ARRAY_TASK_STEP`` for
      ``--array=0-15:4``), N = ``SLURM_ARRAY_TASK_COUNT``. An array such as
      ``--array=1-4`` is shards 0..3 of 4.
    - Kubernetes (``completionMode: Indexed``): I = ``JOB_COMPLETION_INDEX``;
      the pods are not told the count, so ``count`` (the Job's
      ``completions``) must be given.

    Slurm is read first when both are set. ``count``, when given, must
    agree with Slurm's. ``ValueError`` naming the variables when neither is set.
    """
    environ = os.environ if environ is None else environ
    if count is not None:
        count = check_integer(f"the count N of {name}=auto/N", count)
    if "SLURM_ARRAY_TASK_ID" in environ:
        task = _environment_integer(environ, "SLURM_ARRAY_TASK_ID")
        if "SLURM_ARRAY_TASK_COUNT" not in environ:
            raise ValueError("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not: run "
                             "under a Slurm array job (sbatch --array=...) or give --shard I/N.")
        tasks = _environment_integer(environ, "SLURM_ARRAY_TASK_COUNT")
        first = _environment_integer(environ, "SLURM_ARRAY_TASK_MIN") \
            if "SLURM_ARRAY_TASK_MIN" in environ else 0
        step = _environment_integer(environ, "SLURM_ARRAY_TASK_STEP") \
            if "SLURM_ARRAY_TASK_STEP" in environ else 1
        if step < 1 or (task - first) % step:
            raise ValueError(f"SLURM_ARRAY_TASK_ID={task} is not SLURM_ARRAY_TASK_MIN={first} plus a "
                             f"multiple of SLURM_ARRAY_TASK_STEP={step}; give --shard I/N instead.")
        index = (task - first) // step
        if count is not None and count != tasks:
            raise ValueError(f"{name}=auto/{count} disagrees with the Slurm array's "
                             f"SLURM_ARRAY_TASK_COUNT={tasks}. Received: {name}=auto/{count}")
        where = (f"SLURM_ARRAY_TASK_ID={task}, SLURM_ARRAY_TASK_MIN={first}, "
                 f"SLURM_ARRAY_TASK_COUNT={tasks}")
        count = tasks
    elif KUBERNETES_INDEX_VARIABLE in environ:
        index = _environment_integer(environ, KUBERNETES_INDEX_VARIABLE)
        if count is None:
            raise ValueError(
                f"{KUBERNETES_INDEX_VARIABLE}={environ[KUBERNETES_INDEX_VARIABLE]} gives this pod's "
                f"index but not the count: use {name}=auto/N with N the Job's completions. "
                f"Received: {name}=auto")
        where = f"{KUBERNETES_INDEX_VARIABLE}={index}"
    else:
        raise ValueError(
            f"{name}=auto reads the shard from a Slurm array job (SLURM_ARRAY_TASK_ID, "
            f"SLURM_ARRAY_TASK_COUNT) or a Kubernetes Indexed Job ({KUBERNETES_INDEX_VARIABLE}, "
            f"with {name}=auto/N), but none of these variables is set; give {name}=I/N instead.")
    if not 0 <= index < count:
        raise ValueError(f"the shard index {index} read from {where} is not in [0, {count}). "
                         f"Received: {name}=auto")
    return index, count


def resolve_shard(text, name="shard", environ=None):
    """``(I, N)`` from ``"I/N"``, or from the scheduler for ``"auto"`` / ``"auto/N"``
    (:func:`shard_from_environment`); ``ValueError`` naming ``name`` otherwise."""
    match = re.fullmatch(r"\s*auto\s*(?:/\s*(\S+)\s*)?", str(text))
    if match is None:
        return parse_shard(text, name)
    count = match.group(1)
    if count is not None:
        if not count.isdigit():
            raise ValueError(f"{name} must be I/N, auto or auto/N (e.g. auto/4). Received: {name}={text!r}")
        count = int(count)
    return shard_from_environment(count, name, environ)


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
