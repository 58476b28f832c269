"""Models by name: ``tfadv.models.build("resnet32", norm="robmask")``.

Every model maps images in [0, 1] to logits. Per-channel normalization is its
first layer, so attacks work in pixel space. ``norm`` picks the normalization
layer used throughout the architecture (see ``tfadv.models.norms``); with a
conditioned norm the model has a second input, ``condition`` (see
``tfadv.models.conditioning``).
"""
import keras
import numpy as np

from tfadv.models import densenet, resnet, resnet_cifar, tiny  # noqa: F401  (register)
from tfadv.models.conditioning import (
    CONDITION,
    IMAGES,
    BoundModel,
    bind,
    bind_condition,
    call_model,
    condition_inputs,
    is_conditioned,
)
from tfadv.models.applications import application_names, build_application, is_application
from tfadv.models.convert import CONVERTIBLE_NORMS, convert_norm, from_pretrained, with_preprocessing
from tfadv.models.io import load_model, model_display_name, resolve_model_path
from tfadv.models.norms import CONDITIONED_NORMS, NORM_KINDS, NormContext
from tfadv.models.registry import builder_options, get_builder, list_models, register_model

# CIFAR-10 training-set statistics: the usual default input normalization.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def _channel_vector(value, channels, default, name):
    if value is None:
        value = default if channels == len(default) else [float(np.mean(default))] * channels
    value = np.broadcast_to(np.asarray(value, dtype="float32"), (channels,))
    if name == "std" and np.any(value <= 0):
        raise ValueError(f"std must be positive per channel. Received: std={value.tolist()}")
    return value


def build(name, num_classes=10, input_shape=(32, 32, 3), norm="bn", norm_options=None,
          mean=None, std=None, preprocess=None, **options):
    """Build a registered architecture or a ``keras.applications`` one.

    Args:
        name: one of ``list_models()``: ``tiny``, ``resnet20/32/44/56``,
            ``resnet18``, ``preact_resnet18``, ``densenet121``; or a
            ``keras.applications`` name (``"ResNet50V2"``, ``"DenseNet121"``,
            ... ``application_names()``), built by :func:`build_application`
            (``weights=None``, or option ``weights`` a local file; ``mean``
            and ``std`` do not apply: its own preprocessing does).
        num_classes: size of the logit vector.
        input_shape: ``(H, W, C)`` of the images.
        norm: ``"bn"`` (plain BatchNormalization), ``"dual_bn"`` (AdvProp) or
            ``"robmask"`` (ε-conditioned RobMask BN; a conditioned model).
        norm_options: extra arguments of the norm layer, e.g. ``{"k": 2}`` for
            RobMask or ``{"momentum": 0.9}``.
        mean, std: per-channel input statistics applied inside the model
            (default: CIFAR-10's for 3 channels).
        preprocess: a ``keras.applications`` model's input preprocessing
            (default: its family's); registered architectures take images in
            [0, 1] and normalize with ``mean`` / ``std`` (None or ``"0..1"``).
        **options: architecture options (e.g. ``width`` for CIFAR ResNets;
            ``weights`` for a ``keras.applications`` model).

    Returns:
        A functional ``keras.Model`` returning float32 logits.
    """
    if is_application(name) and name not in list_models():
        unknown = sorted(set(options) - {"weights"})
        if unknown:
            raise ValueError(f"Unknown option(s) {unknown} for model {name!r}. Available: ['weights']")
        return build_application(name, num_classes, input_shape, norm, norm_options, preprocess,
                                 options.get("weights"))
    if preprocess not in (None, "0..1"):
        raise ValueError(f"preprocess applies to keras.applications models; {name!r} takes images in "
                         f"[0, 1] and normalizes with mean/std. Received: preprocess={preprocess!r}")
    builder = get_builder(name)
    unknown = sorted(set(options) - set(builder_options(name)))
    if unknown:
        raise ValueError(
            f"Unknown option(s) {unknown} for model {name!r}. Available: {builder_options(name)}"
        )
    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be >= 2. Received: num_classes={num_classes}")
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (H, W, C). Received: input_shape={input_shape}")

    images = keras.Input(input_shape, name=IMAGES)
    condition = keras.Input((1,), name=CONDITION) if norm in CONDITIONED_NORMS else None
    ctx = NormContext(norm, norm_options, condition)
    channels = input_shape[-1]
    mean = _channel_vector(mean, channels, CIFAR10_MEAN, "mean")
    std = _channel_vector(std, channels, CIFAR10_STD, "std")
    x = keras.layers.Normalization(mean=mean, variance=std**2, name="input_normalization")(images)
    features = builder(num_classes, input_shape, ctx, x, **options)
    # Logits stay float32 under mixed precision, as the Keras guide recommends.
    logits = keras.layers.Dense(num_classes, dtype="float32", name="logits")(features)
    inputs = {IMAGES: images, CONDITION: condition} if condition is not None else images
    return keras.Model(inputs, logits, name=name)


__all__ = [
    "CONDITION",
    "IMAGES",
    "CONDITIONED_NORMS",
    "BoundModel",
    "application_names",
    "build_application",
    "CONVERTIBLE_NORMS",
    "NORM_KINDS",
    "bind",
    "bind_condition",
    "build",
    "builder_options",
    "get_builder",
    "call_model",
    "condition_inputs",
    "convert_norm",
    "from_pretrained",
    "is_application",
    "with_preprocessing",
    "is_conditioned",
    "list_models",
    "load_model",
    "model_display_name",
    "resolve_model_path",
    "register_model",
]


def __getattr__(name):  # former names: tfadv._deprecated, with a DeprecationWarning
    from tfadv import _deprecated

    return _deprecated.former_name(__name__, name)
