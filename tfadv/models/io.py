"""Loading tfadv models from ``.keras`` files and run folders.

``safe_mode=True`` refuses Lambda layers and other serialized code, so a
model file can never run code when it is loaded.
"""
import os

import keras


def resolve_model_path(path):
    """The ``.keras`` file of ``path``: the file itself, or ``model.keras`` of a run folder.

    Raises:
        ValueError: naming the path when it is neither.
    """
    path = os.fspath(path)
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "model.keras")):
        return os.path.join(path, "model.keras")
    if os.path.isfile(path) and path.endswith(".keras"):
        return path
    raise ValueError(
        "Expected a .keras file or a run folder holding model.keras. "
        f"Received: path={path!r}"
    )


def load_model(path):
    """Load a tfadv model from a ``.keras`` file or a run folder (no code runs from the file).

    Raises:
        ValueError: naming the path when it holds no model or cannot be read.
    """
    from tfadv import layers  # noqa: F401  (registers tfadv's custom layers)
    from tfadv.models import blocks  # noqa: F401

    keras_file = resolve_model_path(path)
    try:
        return keras.saving.load_model(keras_file, compile=False, safe_mode=True)
    except Exception as error:  # a damaged file: zipfile, h5py and Keras raise many kinds
        raise ValueError(f"Could not load the model at path={keras_file!r}: {error}") from error


def model_display_name(path):
    """A model's name in tables and folders: its run folder's name or the file's stem."""
    path = os.path.normpath(os.fspath(path))
    if os.path.basename(path) == "model.keras":
        path = os.path.dirname(path)
    name = os.path.basename(path)
    return name[: -len(".keras")] if name.endswith(".keras") else name
