"""DenseNet-121 for CIFAR (3×3 stem, growth rate 32, blocks 6-12-24-16).

Reference: Huang, Liu, van der Maaten, Weinberger. Densely Connected
Convolutional Networks. CVPR 2017.
"""
import keras

from tfadv.models.blocks import conv
from tfadv.models.registry import register_model


def _bottleneck(ctx, x, growth_rate):
    out = conv(4 * growth_rate, 1)(ctx.norm_relu(x))
    out = conv(growth_rate)(ctx.norm_relu(out))
    return keras.layers.Concatenate()([out, x])


def _transition(ctx, x, reduction):
    x = conv(int(x.shape[-1] * reduction), 1)(ctx.norm_relu(x))
    return keras.layers.AveragePooling2D(2)(x)


def cifar_densenet(ctx, x, blocks, growth_rate=32, reduction=0.5):
    x = conv(2 * growth_rate)(x)
    for i, count in enumerate(blocks):
        for _ in range(count):
            x = _bottleneck(ctx, x, growth_rate)
        if i < len(blocks) - 1:
            x = _transition(ctx, x, reduction)
    x = ctx.norm_relu(x)
    return keras.layers.GlobalAveragePooling2D()(x)


@register_model
def densenet121(num_classes, input_shape, ctx, x, growth_rate=32):
    return cifar_densenet(ctx, x, (6, 12, 24, 16), growth_rate)
