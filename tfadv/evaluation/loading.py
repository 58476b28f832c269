"""Models to evaluate: run folders, ``.keras`` files and exported SavedModels.

A SavedModel is wrapped as a plain ``images -> logits`` callable built on its
serving signature. Restored signatures are differentiable (TensorFlow
re-derives their gradients from the saved graph), so every attack runs on
them as on the Keras model; only exports with uint8 inputs cannot be
attacked (no gradient reaches integer pixels).
"""

import os

import tensorflow as tf

from tfadv import fingerprints
from tfadv.models.conditioning import bind
from tfadv.models.io import load_model as load_keras_model
from tfadv.models.io import resolve_model_path


class SavedModelFunction:
    """``images -> logits`` of an exported SavedModel.

    It takes part in :mod:`tfadv.models.conditioning` like a Keras model:
    ``tfadv.models.call_model(saved, images, p)`` and
    ``tfadv.models.bind(saved, p)`` call it at strength p (through
    ``conditioned`` and :meth:`logits_at`), so evaluation and the attacks do
    not care where a model came from.

    Works with ``tfadv export`` output (signature ``serving_default(images)
    -> {logits, probabilities}``; for conditioned models also
    ``serve_tradeoff(images, p)``) and with Keras' ``model.export`` (one
    output). Images are float32 ``[B, H, W, C]`` in [0, 1].

    Args:
        path: the SavedModel directory (holding ``saved_model.pb``).

    Attributes:
        conditioned: whether the export has ``serve_tradeoff`` (a masking
            strength p), see :meth:`logits_at`.
        variables: the restored variables (they identify the weights).
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self._loaded = tf.saved_model.load(self.path)
        signatures = self._loaded.signatures
        if "serving_default" not in signatures:
            raise ValueError(
                f"The SavedModel has no serving_default signature. Received: path={self.path!r} "
                f"with signatures {sorted(signatures)}"
            )
        self._default = signatures["serving_default"]
        self._tradeoff = signatures["serve_tradeoff"] if "serve_tradeoff" in signatures else None
        inputs = self._default.structured_input_signature[1]
        if len(inputs) != 1:
            raise ValueError(
                f"serving_default must take one input (the images). Received: path={self.path!r} "
                f"with inputs {sorted(inputs)}"
            )
        (self._images_name, spec), = inputs.items()
        if spec.dtype != tf.float32:
            raise ValueError(
                f"Attacks need float32 image inputs to take gradients; this SavedModel takes "
                f"{spec.dtype.name} (exported with uint8=True?). Export it again with float inputs. "
                f"Received: path={self.path!r}"
            )
        self.conditioned = self._tradeoff is not None
        self.variables = list(self._loaded.variables)

    @staticmethod
    def _logits(outputs):
        if "logits" in outputs:
            return outputs["logits"]
        if len(outputs) == 1:
            return next(iter(outputs.values()))
        raise ValueError(f"Cannot tell which SavedModel output holds the logits. Received outputs: {sorted(outputs)}")

    def __call__(self, images):
        return self._logits(self._default(**{self._images_name: tf.cast(images, tf.float32)}))

    def logits_at(self, images, p):
        """Logits at masking strength ``p`` (a scalar, a float or a tensor); conditioned exports only."""
        if not self.conditioned:
            raise ValueError(f"This SavedModel has no masking strength p. Received: path={self.path!r}")
        return self._logits(self._tradeoff(images=tf.cast(images, tf.float32), p=tf.cast(p, tf.float32)))

    def at(self, p):
        """``images -> logits`` at a fixed strength ``p``: ``tfadv.models.bind(self, p)``."""
        return bind(self, p)

    def __repr__(self):
        return f"SavedModelFunction(path={self.path!r})"


def load_model(path):
    """Load what ``tfadv eval`` evaluates.

    Args:
        path: a run folder (``runs/<name>/`` holding ``model.keras``), a
            ``.keras`` file, or an exported SavedModel directory.

    Returns:
        A ``keras.Model`` (run folders and ``.keras`` files) or a
        :class:`SavedModelFunction`.

    Raises:
        ValueError: naming the path when it holds no model or cannot be read.
    """
    path = os.fspath(path)
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "saved_model.pb")):
        try:
            return SavedModelFunction(path)
        except ValueError:
            raise
        except Exception as error:  # a damaged SavedModel: TensorFlow raises many kinds
            raise ValueError(
                f"Could not load the SavedModel at path={path!r}: it is damaged or incomplete "
                f"({type(error).__name__}: {str(error).strip()[:200]}); export it again with "
                f"`tfadv export MODEL --out {path} --overwrite`.") from error
    try:
        resolve_model_path(path)
    except ValueError:
        raise ValueError(
            "Expected a run folder holding model.keras, a .keras file or a SavedModel directory. "
            f"Received: path={path!r}"
        ) from None
    return load_keras_model(path)


def _shape_header(array):
    return str(array.shape)  # what eval.json part keys have been computed with


def weights_fingerprint(model):
    """16 hex digits of :func:`tfadv.fingerprints.weights_fingerprint`, or ``None`` if the model
    has no weights we can see.

    Identifies the trained weights, so results stored for a model are reused
    only for the very same weights.
    """
    return fingerprints.weights_fingerprint(model, length=16, header=_shape_header)
