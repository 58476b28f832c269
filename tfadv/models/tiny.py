"""A tiny convolutional network for tests and quick looks (two norm layers)."""
import keras

from tfadv.models.blocks import conv
from tfadv.models.registry import register_model


@register_model
def tiny(num_classes, input_shape, ctx, x, width=8):
    x = ctx.norm_relu(conv(width)(x))
    x = ctx.norm_relu(conv(2 * width, strides=2)(x))
    return keras.layers.GlobalAveragePooling2D()(x)
