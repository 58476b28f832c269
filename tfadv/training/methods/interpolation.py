"""Masking interpolation: one model with a run-time knob p between two maskings."""

import copy

import keras
import numpy as np

from tfadv.checks import check_choice
from tfadv.layers import ConditionedBatchNormalization
from tfadv.models.conditioning import CONDITION, IMAGES


def _check_same(name, clean, robust):
    for a, b in zip(clean, robust):
        if a.shape != b.shape or not np.array_equal(a, b):
            raise ValueError(
                "The clean and robust models must share every weight but the BN gamma and beta "
                f"(fine-tune one from the other with bn_finetune). Received: layer {name!r} differs"
            )


STATISTICS = ("shared", "fold", "robust", "clean")
"""``interpolation_model``'s choices of BN moving statistics (see its docstring)."""


class _BatchNormValues:
    """γ, β and moving statistics of one BN layer as arrays (what ``set_bases_from`` reads)."""

    def __init__(self, gamma, beta, moving_mean, moving_variance):
        self.gamma, self.beta = gamma, beta
        self.moving_mean, self.moving_variance = moving_mean, moving_variance


def _folded(clean_layer, robust_layer):
    """``clean_layer``'s inference-mode map expressed over ``robust_layer``'s statistics.

    γ_c (x − μ_c)/σ_c + β_c = γ' (x − μ_r)/σ_r + β' for every x with
    γ' = γ_c σ_r/σ_c and β' = β_c + γ_c (μ_r − μ_c)/σ_c, σ = √(var + ε).
    """
    if not (clean_layer.scale and clean_layer.center):
        raise ValueError(
            "statistics='fold' rewrites gamma and beta, so the BN layers need scale=True and center=True. "
            f"Received: layer {clean_layer.name!r} with scale={clean_layer.scale}, center={clean_layer.center}")

    def array(value):
        return np.asarray(value, dtype="float64")

    mean_c, mean_r = array(clean_layer.moving_mean), array(robust_layer.moving_mean)
    sigma_c = np.sqrt(array(clean_layer.moving_variance) + clean_layer.epsilon)
    sigma_r = np.sqrt(array(robust_layer.moving_variance) + robust_layer.epsilon)
    gamma_c, beta_c = array(clean_layer.gamma), array(clean_layer.beta)
    gamma = gamma_c * sigma_r / sigma_c
    beta = beta_c + gamma_c * (mean_r - mean_c) / sigma_c
    return _BatchNormValues(gamma.astype("float32"), beta.astype("float32"),
                            np.asarray(robust_layer.moving_mean), np.asarray(robust_layer.moving_variance))


def _is_functional(model):
    return isinstance(model, keras.Model) and "input_layers" in (model.get_config() or {})


def _conditioned_config(model):
    """``model``'s functional config with a ``condition`` input and every ``BatchNormalization``
    replaced by a k = 2 ``ConditionedBatchNormalization`` reading it (names kept).

    ``keras.models.clone_model`` walks the graph the same way but cannot add an
    input, so the graph is rewritten in the config, Keras' public description of it.
    """
    config = copy.deepcopy(model.get_config())
    names = {entry["name"] for entry in config["layers"]}
    if CONDITION in names:
        raise ValueError(f"robust_model already has a layer named {CONDITION!r}. Received: robust_model={model.name!r}")
    condition_tensor = {"class_name": "__keras_tensor__",
                        "config": {"shape": [None, 1], "dtype": "float32", "keras_history": [CONDITION, 0, 0]}}
    layers = [keras.saving.serialize_keras_object(keras.layers.InputLayer(shape=(1,), name=CONDITION))]
    layers[0].update(name=CONDITION, inbound_nodes=[])
    for entry in config["layers"]:
        layer = model.get_layer(entry["name"])
        if isinstance(layer, keras.layers.BatchNormalization):
            replacement = ConditionedBatchNormalization(
                k=2, momentum=layer.momentum, epsilon=layer.epsilon, center=layer.center,
                scale=layer.scale, name=layer.name, dtype=layer.dtype_policy)
            nodes = [{"args": [[node["args"][0], condition_tensor]],
                      "kwargs": {k: v for k, v in node["kwargs"].items() if k != "mask"}}
                     for node in entry["inbound_nodes"]]
            entry = {**keras.saving.serialize_keras_object(replacement), "name": layer.name, "inbound_nodes": nodes}
        layers.append(entry)
    (images_layer,) = [entry for entry in config["layers"] if entry["class_name"] == "InputLayer"][:1]
    config.update(layers=layers, name=f"{model.name}_interpolation",
                  input_layers={IMAGES: [images_layer["name"], 0, 0], CONDITION: [CONDITION, 0, 0]})
    return config


def interpolation_model(clean_model, robust_model, statistics="shared"):
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

    The layer has one set of moving statistics. ``statistics`` says where
    it comes from when the two models' statistics differ (BN-only
    fine-tuning updates them unless ``freeze_statistics=True``); all choices
    give the same model when they are equal:

    - ``"shared"`` (default): the statistics must be equal; otherwise
      ``ValueError`` (naming the layer and these choices). Both ends are
      reproduced exactly.
    - ``"fold"``: the robust model's statistics; the clean model's
      inference-mode BN map is rewritten over them,
      ``γ' = γ_c σ_r/σ_c``, ``β' = β_c + γ_c (μ_r − μ_c)/σ_c``
      (σ = √(var + ε)), so p = 0 and p = 1 both reproduce their model
      exactly in inference mode, and in between the per-channel affine
      map (scale and shift of the raw features) moves linearly. In training
      mode (batch statistics) p = 0 is not the clean model.
    - ``"robust"``: the robust model's statistics with the raw γ, β of both:
      p = 1 is ``robust_model``; p = 0 is the clean masking over the robust
      statistics, not ``clean_model``.
    - ``"clean"``: the clean model's statistics: p = 0 is ``clean_model``,
      p = 1 is not ``robust_model``.

    Args:
        clean_model, robust_model: plain functional models of the same
            architecture, equal in every weight but BN γ, β (and, unless
            ``statistics="shared"``, the BN moving statistics).
        statistics: ``"shared"``, ``"fold"``, ``"robust"`` or ``"clean"``.

    Returns:
        A new functional ``keras.Model`` (weights copied, nothing shared).
    """
    check_choice("statistics", statistics, STATISTICS)
    for name, model in (("clean_model", clean_model), ("robust_model", robust_model)):
        if not _is_functional(model) or len(model.inputs) != 1:
            raise ValueError(f"{name} must be a functional model with one image input. Received: {name}={model!r}")
    if len(clean_model.layers) != len(robust_model.layers):
        raise ValueError(
            "clean_model and robust_model must have the same architecture. Received: "
            f"{len(clean_model.layers)} and {len(robust_model.layers)} layers"
        )
    model = keras.Model.from_config(_conditioned_config(robust_model))
    copies = {id(layer): model.get_layer(layer.name) for layer in robust_model.layers}
    for clean_layer, robust_layer in zip(clean_model.layers, robust_model.layers):
        if type(clean_layer) is not type(robust_layer):
            raise ValueError(
                "clean_model and robust_model must have the same architecture. Received: "
                f"{clean_layer.name!r} ({type(clean_layer).__name__}) vs "
                f"{robust_layer.name!r} ({type(robust_layer).__name__})"
            )
        target = copies.get(id(robust_layer))
        if target is None:  # input layers
            continue
        if isinstance(target, ConditionedBatchNormalization):
            shared = all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in (
                (clean_layer.moving_mean, robust_layer.moving_mean),
                (clean_layer.moving_variance, robust_layer.moving_variance)))
            if statistics == "shared" and not shared:
                raise ValueError(
                    f"The BN moving statistics of clean_model and robust_model differ (layer "
                    f"{robust_layer.name!r}; BN-only fine-tuning updates them unless "
                    "freeze_statistics=True). Choose them: statistics='fold' (both ends exact), "
                    "'robust' or 'clean'. Received: statistics='shared'")
            if statistics == "fold" and not shared:
                target.set_bases_from([_folded(clean_layer, robust_layer), robust_layer], statistics_from=1)
            else:
                target.set_bases_from([clean_layer, robust_layer],
                                    statistics_from=0 if statistics == "clean" else 1)
        else:
            _check_same(robust_layer.name, clean_layer.get_weights(), robust_layer.get_weights())
            target.set_weights(robust_layer.get_weights())
    return model
