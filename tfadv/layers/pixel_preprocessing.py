"""Images in [0, 1] mapped to the input range or normalization a model expects."""

import keras
from keras import ops

from tfadv.checks import check_choice

# ImageNet statistics as keras.applications' "torch" and "caffe" preprocessing use them.
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)

PREPROCESS_MODES = ("0..1", "0..255", "-1..1", "torch", "caffe")
"""``0..1``: [0, 1] unchanged; ``0..255``: × 255; ``-1..1``: × 2 − 1 (keras.applications'
"tf" mode); ``torch``: ImageNet mean/std normalization of [0, 1] pixels; ``caffe``:
RGB → BGR, × 255, minus the ImageNet BGR mean."""


@keras.saving.register_keras_serializable(package="tfadv")
class PixelPreprocessing(keras.layers.Layer):
    """Map images in [0, 1] to what a model was trained on, inside the model.

    tfadv's attacks, ε and clipping work on images in [0, 1]. A model that
    expects 0..255 or [−1, 1] pixels, or ImageNet-normalized ones (the
    ``keras.applications`` families), gets this layer first, so ε stays in
    [0, 1] units and the gradient flows through the preprocessing:

    - ``"0..1"``: ``x``;
    - ``"0..255"``: ``255 · x`` (EfficientNet, ConvNeXt, RegNet, MobileNetV3:
      their own preprocessing is inside them);
    - ``"-1..1"``: ``2 · x − 1`` (``preprocess_input`` mode "tf": ResNet-V2,
      MobileNet(V2), Inception, Xception, NASNet);
    - ``"torch"``: ``(x − mean) / std`` with ImageNet's mean and std (DenseNet);
    - ``"caffe"``: BGR channel order, ``255 · x − mean_BGR`` (ResNet-V1, VGG).

    Args:
        mode: one of ``PREPROCESS_MODES``.
        **kwargs: base layer arguments.
    """

    def __init__(self, mode="0..1", **kwargs):
        super().__init__(**kwargs)
        check_choice("mode", mode, PREPROCESS_MODES)
        self.mode = mode

    def call(self, inputs):
        x = inputs
        if self.mode == "0..255":
            return x * 255.0
        if self.mode == "-1..1":
            return x * 2.0 - 1.0
        if self.mode == "torch":
            mean = ops.cast(ops.convert_to_tensor(_TORCH_MEAN), x.dtype)
            std = ops.cast(ops.convert_to_tensor(_TORCH_STD), x.dtype)
            return (x - mean) / std
        if self.mode == "caffe":
            mean = ops.cast(ops.convert_to_tensor(_CAFFE_BGR_MEAN), x.dtype)
            return ops.flip(x, axis=-1) * 255.0 - mean
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
