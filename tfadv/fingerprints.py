"""What identifies the weights and the data a stored result was computed from.

One function, :func:`fingerprint`: SHA-256 over each array's dtype, shape and
bytes, in order. Stored results carry it (``eval.json`` parts, ``surface.h5``,
the fine-tuning stored set) so that a rerun reuses a result only for the very
same weights and data, and refuses to mix results of different ones. This
module imports nothing of tfadv, so any package may use it.
"""
import hashlib

import numpy as np


def fingerprint(arrays, length=None, header=True):
    """SHA-256 (hex) of ``arrays`` in order: each one's ``f"{dtype}{shape}"``, then its bytes.

    Args:
        arrays: an iterable of array-likes (NumPy arrays, tensors, variables).
        length: keep the first ``length`` hex digits (``None``: all 64).
        header: hash each array's dtype and shape before its bytes
            (``f"{dtype}{shape}"``). Files already written with other headers
            keep theirs, so that they stay valid: ``False`` hashes the bytes
            only (the landscape directions in ``surface.h5``, float32), and a
            function ``array -> str`` writes that string (the fine-tuning
            stored set: ``str((dtype.str, shape))``; the weights in
            ``eval.json`` part keys: ``str(shape)``).
    """
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(np.asarray(array))
        if callable(header):
            digest.update(header(array).encode())
        elif header:
            digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:length]


def weights_fingerprint(model, length=None, header=True):
    """:func:`fingerprint` of a model's weight values in order, or ``None`` if it has none we can see.

    ``model`` is anything with ``weights`` (Keras) or ``variables`` (a loaded
    SavedModel, ``tf.Module``).
    """
    variables = getattr(model, "weights", None)
    if variables is None:
        variables = getattr(model, "variables", None)
    if not variables:
        return None
    return fingerprint(variables, length, header)


def data_fingerprint(x, y, length=None):
    """:func:`fingerprint` of images and labels."""
    return fingerprint((x, y), length)
