"""Conditioned models: a second named input carries the masking strength p.

A model built with a conditioned normalization (AdvProp's dual BN, RobMask)
takes ``{"images": [B, H, W, C], "condition": [B, 1]}``. The helpers here let
code that only wants ``images -> logits`` (attacks, landscapes, evaluation)
bind a value of p without knowing which kind of model it holds.
"""

import tensorflow as tf

IMAGES = "images"
CONDITION = "condition"


def is_conditioned(model):
    """True when ``model`` takes the ``condition`` input as well as images."""
    inputs = getattr(model, "inputs", None) or []
    names = {getattr(t, "name", "").split(":")[0] for t in inputs}
    return CONDITION in names or (
        isinstance(getattr(model, "_inputs_struct", None), dict)
        and CONDITION in model._inputs_struct
    )


def condition_batch(p, images):
    """Broadcast a scalar, [B] or [B, 1] strength ``p`` to shape [B, 1] float32."""
    p = tf.cast(tf.convert_to_tensor(p), tf.float32)
    batch = tf.shape(images)[0]
    return tf.reshape(tf.broadcast_to(tf.reshape(p, [-1, 1]), [batch, 1]), [batch, 1])


def condition_inputs(images, p):
    """The input dict a conditioned model expects, with ``p`` broadcast."""
    images = tf.convert_to_tensor(images)  # Keras refuses dicts mixing arrays and tensors
    return {IMAGES: images, CONDITION: condition_batch(p, images)}


class ConditionedModelFn:
    """``images -> logits`` for a conditioned model at a fixed strength ``p``.

    Attacks recognise this object: they compile once per ``model`` and feed
    ``condition`` as a tensor argument, so changing p never retraces.
    """

    def __init__(self, model, condition):
        if not is_conditioned(model):
            raise ValueError(
                f"bind_condition needs a conditioned model (inputs 'images' and "
                f"'condition'). Received: model={getattr(model, 'name', model)!r}"
            )
        self.model = model
        self.condition = condition

    def __call__(self, images, training=False):
        return self.model(condition_inputs(images, self.condition), training=training)

    def call_with_condition(self, images, condition, training=False):
        return self.model(condition_inputs(images, condition), training=training)

    def __repr__(self):
        return f"ConditionedModelFn(model={self.model.name!r}, condition={self.condition!r})"


def bind_condition(model, p):
    """Return ``images -> logits`` of a conditioned ``model`` at strength ``p``."""
    return ConditionedModelFn(model, p)


def model_fn_for(model, p=0.0):
    """The model itself for plain models; bound to ``p`` for conditioned ones."""
    return bind_condition(model, p) if is_conditioned(model) else model


def call_model(model, images, p=0.0, training=False):
    """Logits of any tfadv model at strength ``p`` (ignored by plain models)."""
    if is_conditioned(model):
        return model(condition_inputs(images, p), training=training)
    return model(images, training=training)


