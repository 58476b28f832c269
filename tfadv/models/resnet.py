"""ResNet-18 and PreAct ResNet-18, CIFAR variants (3×3 stem, no max-pool).

The RobMask / AdvProp experiments of the Adversarial Masking paper use these.

References:
    He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. CVPR 2016.
    He, Zhang, Ren, Sun. Identity Mappings in Deep Residual Networks. ECCV 2016.
"""
import keras

from tfadv.models.blocks import conv
from tfadv.models.registry import register_model

_STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))


def _basic_block(ctx, x, filters, stride):
    out = ctx.norm_relu(conv(filters, strides=stride)(x))
    out = ctx.norm(conv(filters)(out))
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = ctx.norm(conv(filters, 1, strides=stride)(x))
    return keras.layers.ReLU()(keras.layers.Add()([out, shortcut]))


def _preact_block(ctx, x, filters, stride):
    out = ctx.norm_relu(x)
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = conv(filters, 1, strides=stride)(out)
    out = conv(filters, strides=stride)(out)
    out = conv(filters)(ctx.norm_relu(out))
    return keras.layers.Add()([out, shortcut])


def _scaled(width_multiplier):
    return [(max(1, int(f * width_multiplier)), s) for f, s in _STAGES]


@register_model
def resnet18(num_classes, input_shape, ctx, x, width_multiplier=1.0):
    stages = _scaled(width_multiplier)
    x = ctx.norm_relu(conv(stages[0][0])(x))
    for filters, stride in stages:
        x = _basic_block(ctx, x, filters, stride)
        x = _basic_block(ctx, x, filters, 1)
    return keras.layers.GlobalAveragePooling2D()(x)


@register_model
def preact_resnet18(num_classes, input_shape, ctx, x, width_multiplier=1.0):
    stages = _scaled(width_multiplier)
    x = conv(stages[0][0])(x)
    for filters, stride in stages:
        x = _preact_block(ctx, x, filters, stride)
        x = _preact_block(ctx, x, filters, 1)
    x = ctx.norm_relu(x)
    return keras.layers.GlobalAveragePooling2D()(x)
