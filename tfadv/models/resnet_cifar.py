"""CIFAR ResNet-20/32/44/56 (He et al. 2016, Sec. 4.2) with option-A shortcuts.

Three stages of 16, 32 and 64 channels with n basic blocks each (depth = 6n + 2);
the shortcut between stages subsamples and zero-pads (no parameters). ResNet-32
is the model of the loss-landscape paper.

Reference: He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. CVPR 2016.
"""
import keras

from tfadv.models.blocks import ShortcutPadding, conv
from tfadv.models.registry import register_model


def _basic_block(ctx, x, filters, stride):
    out = ctx.norm_relu(conv(filters, strides=stride)(x))
    out = ctx.norm(conv(filters)(out))
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = ShortcutPadding(filters, stride)(x)
    return keras.layers.ReLU()(keras.layers.Add()([out, shortcut]))


def cifar_resnet(ctx, x, depth, width=16):
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n + 2. Received: depth={depth}")
    blocks = (depth - 2) // 6
    x = ctx.norm_relu(conv(width)(x))
    for stage, filters in enumerate((width, 2 * width, 4 * width)):
        for block in range(blocks):
            x = _basic_block(ctx, x, filters, 2 if stage > 0 and block == 0 else 1)
    return keras.layers.GlobalAveragePooling2D()(x)


@register_model
def resnet20(num_classes, input_shape, ctx, x, width=16):
    return cifar_resnet(ctx, x, 20, width)


@register_model
def resnet32(num_classes, input_shape, ctx, x, width=16):
    return cifar_resnet(ctx, x, 32, width)


@register_model
def resnet44(num_classes, input_shape, ctx, x, width=16):
    return cifar_resnet(ctx, x, 44, width)


@register_model
def resnet56(num_classes, input_shape, ctx, x, width=16):
    return cifar_resnet(ctx, x, 56, width)
