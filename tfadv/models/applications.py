"""``keras.applications`` architectures by name, as ``model.name`` (``build("DenseNet121", ...)``).

Built with ``weights=None`` (or the weights of a local file), logits
(``classifier_activation=None``), the class count and input shape of the
data, their input preprocessing as a first layer
(:class:`tfadv.layers.PixelPreprocessing`, so they take images in [0, 1] like
every tfadv model) and, for ``norm="robmask"`` or ``"dual_bn"``, their
BatchNormalization layers converted by :func:`tfadv.models.convert_norm`.
"""
import keras

# What each keras.applications family expects, as its preprocess_input documents it
# (mode "tf" is [-1, 1]; "torch" and "caffe" ImageNet normalizations; the families that
# preprocess inside the model take 0..255).
_FAMILY_PREPROCESS = (
    ("ResNet50V2", "-1..1"), ("ResNet101V2", "-1..1"), ("ResNet152V2", "-1..1"),
    ("ResNet", "caffe"), ("VGG", "caffe"),
    ("MobileNetV3", "0..255"), ("MobileNet", "-1..1"),
    ("Inception", "-1..1"), ("Xception", "-1..1"), ("NASNet", "-1..1"),
    ("DenseNet", "torch"),
    ("EfficientNet", "0..255"), ("ConvNeXt", "0..255"), ("RegNet", "0..255"),
)


def application_names():
    """The ``keras.applications`` model constructors tfadv knows the preprocessing of."""
    names = [name for name in dir(keras.applications)
             if name[:1].isupper() and callable(getattr(keras.applications, name))]
    return sorted(name for name in names if default_preprocess(name, strict=False) is not None)


def is_application(name):
    return isinstance(name, str) and name in application_names()


def default_preprocess(name, strict=True):
    """The :class:`~tfadv.layers.PixelPreprocessing` mode ``keras.applications.<name>`` expects."""
    for prefix, mode in _FAMILY_PREPROCESS:
        if name.startswith(prefix):
            return mode
    if strict:
        raise ValueError(f"Unknown keras.applications model. Received: name={name!r}")
    return None


def build_application(name, num_classes=10, input_shape=(32, 32, 3), norm="bn", norm_options=None,
                      preprocess=None, weights=None):
    """``keras.applications.<name>`` as a tfadv model: images in [0, 1] -> logits.

    Args:
        name: a ``keras.applications`` constructor, e.g. ``"ResNet50V2"``,
            ``"MobileNetV2"``, ``"EfficientNetB0"``, ``"DenseNet121"``.
        num_classes: size of the logit vector.
        input_shape: ``(H, W, C)``; Keras' applications need H, W ≥ 32.
        norm: ``"bn"`` (as Keras builds it), ``"robmask"`` or ``"dual_bn"``
            (its BatchNormalization layers converted, :func:`convert_norm`).
        norm_options: options of the conditioned norm (``k``, ``branches``, ``momentum``).
        preprocess: the input preprocessing (default: the family's, see
            :func:`default_preprocess`).
        weights: None (random initialization) or the path of a local weights
            file matching this architecture, class count and input shape
            (nothing is downloaded).
    """
    from tfadv.models.convert import CONVERTIBLE_NORMS, convert_norm, with_preprocessing

    if not is_application(name):
        raise ValueError(f"Unknown keras.applications model. Received: name={name!r}")
    if weights is not None and not isinstance(weights, str):
        raise ValueError(f"weights must be None or a local file path. Received: weights={weights!r}")
    preprocess = preprocess or default_preprocess(name)
    model = getattr(keras.applications, name)(
        weights=weights, input_shape=tuple(int(d) for d in input_shape), classes=int(num_classes),
        classifier_activation=None)
    if norm in CONVERTIBLE_NORMS:
        return convert_norm(model, norm, preprocess=preprocess, **(norm_options or {}))
    if norm != "bn":
        raise ValueError(f"norm must be 'bn' or one of {CONVERTIBLE_NORMS}. Received: norm={norm!r}")
    return with_preprocessing(model, preprocess)
