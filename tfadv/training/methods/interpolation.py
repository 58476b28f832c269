"""Masking interpolation: one model with a run-time knob p between two maskings."""

import keras
import numpy as np

from tfadv.layers import ConditionedBatchNormalization
from tfadv.models.conditioning import CONDITION, IMAGES


def _check_same(name, clean, robust):
    for a, b in zip(clean, robust):
        if a.shape != b.shape or not np.array_equal(a, b):
            raise ValueError(
                "The clean and robust models must share every weight but the BN gamma and beta "
                f"(fine-tune one from the other with bn_finetune). Received: layer {name!r} differs"
            )


def interpolation_model(clean_model, robust_model):
    """A conditioned model whose BN masking moves from ``clean_model`` (p = 0) to ``robust_model`` (p = 1).

    Sec. 3.2 of the Adversarial Masking paper: two models that differ only in
    their BN affine parameters (a robust model and its BN-only fine-tuning on
    clean data, :class:`BNFineTuning`) define a family of maskings

        γ_p = (1 − p)·γ_clean + p·γ_robust,   β_p = (1 − p)·β_clean + p·β_robust

    over the same features. The returned model has the architecture of
    ``robust_model`` with every ``BatchNormalization`` replaced by a k = 2
    :class:`~tfadv.layers.ConditionedBatchNormalization` whose bases are the
    two models' γ, β and whose (shared) moving statistics are theirs; it
    takes ``{"images", "condition"}`` like every conditioned tfadv model and
    equals ``clean_model`` at p = 0 and ``robust_model`` at p = 1.

    Args:
        clean_model, robust_model: plain functional models of the same
            architecture, equal in every weight but BN γ and β.

    Returns:
        A new functional ``keras.Model`` (weights copied, nothing shared).
    """
    for name, model in (("clean_model", clean_model), ("robust_model", robust_model)):
        if not hasattr(model, "_run_through_graph") or len(model.inputs) != 1:
            raise ValueError(f"{name} must be a functional model with one image input. Received: {name}={model!r}")
    if len(clean_model.layers) != len(robust_model.layers):
        raise ValueError(
            "clean_model and robust_model must have the same architecture. Received: "
            f"{len(clean_model.layers)} and {len(robust_model.layers)} layers"
        )
    images = keras.Input(batch_shape=robust_model.inputs[0].shape, name=IMAGES)
    condition = keras.Input((1,), name=CONDITION)
    copies = {}

    def copy_layer(layer):
        if id(layer) not in copies:
            if isinstance(layer, keras.layers.BatchNormalization):
                copies[id(layer)] = ConditionedBatchNormalization(
                    k=2, momentum=layer.momentum, epsilon=layer.epsilon, center=layer.center,
                    scale=layer.scale, name=layer.name, dtype=layer.dtype_policy)
            else:
                copies[id(layer)] = layer.__class__.from_config(layer.get_config())
        return copies[id(layer)]

    def call_layer(layer, *args, **kwargs):
        if isinstance(layer, ConditionedBatchNormalization):
            kwargs.pop("mask", None)
            return layer([args[0], condition], **kwargs)
        return layer(*args, **kwargs)

    # keras.models.clone_model walks the graph the same way but cannot add
    # the condition input, so the walk is done here with its building block.
    outputs = robust_model._run_through_graph(images, operation_fn=copy_layer, call_fn=call_layer)
    model = keras.Model({IMAGES: images, CONDITION: condition}, outputs,
                        name=f"{robust_model.name}_interpolation")

    for clean_layer, robust_layer in zip(clean_model.layers, robust_model.layers):
        if type(clean_layer) is not type(robust_layer):
            raise ValueError(
                "clean_model and robust_model must have the same architecture. Received: "
                f"{clean_layer.name!r} ({type(clean_layer).__name__}) vs "
                f"{robust_layer.name!r} ({type(robust_layer).__name__})"
            )
        copy = copies.get(id(robust_layer))
        if copy is None:  # input layers
            continue
        if isinstance(copy, ConditionedBatchNormalization):
            _check_same(robust_layer.name,
                        [np.asarray(clean_layer.moving_mean), np.asarray(clean_layer.moving_variance)],
                        [np.asarray(robust_layer.moving_mean), np.asarray(robust_layer.moving_variance)])
            copy.set_bases_from([clean_layer, robust_layer])
        else:
            _check_same(robust_layer.name, clean_layer.get_weights(), robust_layer.get_weights())
            copy.set_weights(robust_layer.get_weights())
    return model
