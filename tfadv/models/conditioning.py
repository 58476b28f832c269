"""Conditioned models, and the one way to call any model at a strength p.

A model built with a conditioned normalization (AdvProp's dual BN, RobMask)
takes ``{"images": [B, H, W, C], "condition": [B, 1]}``. Code that only
wants ``images -> logits`` (attacks, training methods, evaluation,
landscapes, export) calls every model the same way:

- :func:`call_model` ``(model, images, p, training)``: logits of a plain
  model (p ignored), a conditioned Keras model (p fed as its condition) or a
  loaded SavedModel (:class:`tfadv.evaluation.SavedModelFunction`, p fed to
  its ``serve_tradeoff`` signature);
- :func:`bind` ``(model, p)``: a :class:`BoundModel`, the callable
  ``images -> logits`` of ``model`` at ``p`` with attributes ``.model`` and
  ``.condition`` (``None`` for a model without a strength). Attacks compile
  once per ``.model`` and feed ``.condition`` as a tensor, so changing p never
  retraces.

A loaded SavedModel takes part through two attributes: ``conditioned``
(whether it has a strength) and ``logits_at(images, p)``.
"""

import keras
import tensorflow as tf

IMAGES = "images"
CONDITION = "condition"


def _is_keras(model):
    return isinstance(model, keras.Layer)


def is_conditioned(model):
    """True when ``model`` takes a strength p: a Keras model with the ``condition``
    input, or a loaded SavedModel with ``serve_tradeoff``."""
    if not _is_keras(model):
        return callable(getattr(model, "logits_at", None)) and bool(getattr(model, "conditioned", False))
    inputs = getattr(model, "inputs", None) or []
    names = {getattr(t, "name", "").split(":")[0] for t in inputs}
    try:
        structure = model.input  # a functional model's inputs as declared (a dict for conditioned ones)
    except (AttributeError, ValueError):  # a subclassed model never called
        structure = None
    return CONDITION in names or (isinstance(structure, dict) and CONDITION in structure)


def condition_batch(p, images):
    """Broadcast a scalar, [B] or [B, 1] strength ``p`` to shape [B, 1] float32."""
    p = tf.cast(tf.convert_to_tensor(p), tf.float32)
    batch = tf.shape(images)[0]
    return tf.reshape(tf.broadcast_to(tf.reshape(p, [-1, 1]), [batch, 1]), [batch, 1])


def condition_inputs(images, p):
    """The input dict a conditioned Keras model expects, with ``p`` broadcast."""
    images = tf.convert_to_tensor(images)  # Keras refuses dicts mixing arrays and tensors
    return {IMAGES: images, CONDITION: condition_batch(p, images)}


def call_model(model, images, p=0.0, training=False):
    """Logits of ``model`` on ``images`` at strength ``p`` (ignored by models without one).

    Args:
        model: a Keras model (plain or conditioned), a loaded SavedModel, a
            :class:`BoundModel` (called at its own p) or any callable
            images -> logits.
        images: float images ``[B, H, W, C]`` in [0, 1].
        p: the strength, a number or a tensor (scalar, ``[B]`` or ``[B, 1]``).
        training: the mode of a Keras model (other callables have none).
    """
    if _is_keras(model):
        if is_conditioned(model):
            return model(condition_inputs(images, p), training=training)
        return model(images, training=training)
    if is_conditioned(model):
        return model.logits_at(images, p)
    if isinstance(model, BoundModel):
        return model(images, training=training)
    return model(images)


class BoundModel:
    """``images -> logits`` of a model at a fixed strength p.

    Attributes:
        model: the model (Keras model, loaded SavedModel or callable).
        condition: the strength p, or ``None`` for a model without one.
    """

    def __init__(self, model, condition):
        self.model = model
        self.condition = condition

    def __call__(self, images, training=False):
        return call_model(self.model, images, self.condition, training=training)

    def __repr__(self):
        name = getattr(self.model, "name", None) or repr(self.model)
        return f"BoundModel(model={name!r}, condition={self.condition!r})"


def bind(model, p=0.0):
    """``images -> logits`` of ``model`` at strength ``p``, as a :class:`BoundModel`.

    Every model is bound the same way; for a model without a strength p is
    dropped (``.condition`` is ``None``). A :class:`BoundModel` is returned
    as it is.
    """
    if isinstance(model, BoundModel):
        return model
    if not callable(model):
        raise ValueError(f"model must be a callable images -> logits. Received: model={model!r}")
    return BoundModel(model, p if is_conditioned(model) else None)


def bind_condition(model, p):
    """:func:`bind` for a model that must take a strength: ``ValueError`` otherwise."""
    if not is_conditioned(model):
        raise ValueError(
            f"bind_condition needs a conditioned model (inputs 'images' and "
            f"'condition'). Received: model={getattr(model, 'name', model)!r}"
        )
    return BoundModel(model, p)


def __getattr__(name):  # former names: tfadv._deprecated, with a DeprecationWarning
    from tfadv import _deprecated

    return _deprecated.former_name(__name__, name)
