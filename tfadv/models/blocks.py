"""Small layers the architectures share that Keras does not ship."""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfadv")
class ShortcutPadding(keras.layers.Layer):
    """He et al.'s option-A shortcut: subsample by ``stride`` and zero-pad channels.

    Parameter-free, so a CIFAR ResNet's shortcut adds no weights (as in the
    ResNet-20/32/44/56 of He et al. 2016 and the loss-landscape paper).

    Args:
        out_channels: channels after padding (added zeros split evenly front/back).
        stride: spatial subsampling factor.
    """

    def __init__(self, out_channels, stride=2, **kwargs):
        super().__init__(**kwargs)
        self.out_channels = int(out_channels)
        self.stride = int(stride)

    def call(self, inputs):
        x = inputs[:, :: self.stride, :: self.stride, :]
        extra = self.out_channels - x.shape[-1]
        if extra < 0:
            raise ValueError(
                f"ShortcutPadding cannot shrink channels. Received: input channels={x.shape[-1]}, "
                f"out_channels={self.out_channels}"
            )
        return ops.pad(x, [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]])

    def compute_output_shape(self, input_shape):
        def down(d):
            return None if d is None else (d + self.stride - 1) // self.stride

        return (input_shape[0], down(input_shape[1]), down(input_shape[2]), self.out_channels)

    def get_config(self):
        return {**super().get_config(), "out_channels": self.out_channels, "stride": self.stride}


def conv(filters, kernel_size=3, strides=1, name=None):
    """Bias-free, He-initialised convolution, as every BN architecture here uses."""
    return keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", use_bias=False,
        kernel_initializer="he_normal", name=name,
    )
