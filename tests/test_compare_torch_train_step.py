"""tools/compare_torch_train_step.py without torch: the ResNet-20 weight export (Keras →
the PyTorch state_dict's arrays) against a NumPy forward pass written from those arrays
alone, and the bench's trainers that the tool times."""
import importlib.util
import os

import keras
import numpy as np
import pytest

from tfadv import models

TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")


def _load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(TOOLS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _load("compare_torch_train_step")


def _conv_nchw(x, weight, stride):
    """3×3 convolution in NCHW / OIHW with TensorFlow's "same" padding (the extra row and
    column of an even input at stride 2 go at the bottom and right)."""
    size = x.shape[-1]
    out_size = -(-size // stride)
    total = max((out_size - 1) * stride + 3 - size, 0)
    before = total // 2
    padded = np.pad(x, ((0, 0), (0, 0), (before, total - before), (before, total - before)))
    out = 0.0
    for i in range(3):
        for j in range(3):
            window = padded[:, :, i:i + stride * out_size:stride, j:j + stride * out_size:stride]
            out = out + np.einsum("nchw,oc->nohw", window, weight[:, :, i, j])
    return out


def _bn(x, arrays, name, epsilon):
    def channel(key):
        return arrays[f"{name}.{key}"][None, :, None, None]

    return (x - channel("running_mean")) / np.sqrt(channel("running_var") + epsilon) * channel("weight") \
        + channel("bias")


def _numpy_resnet(arrays, settings, images):
    """He et al.'s CIFAR ResNet (option A) in inference mode, from the exported arrays only."""
    relu = lambda t: np.maximum(t, 0.0)  # noqa: E731
    eps = settings["bn_epsilon"]
    x = (images.transpose(0, 3, 1, 2) - arrays["input_mean"]) / arrays["input_std"]
    x = relu(_bn(_conv_nchw(x, arrays["conv.weight"], 1), arrays, "bn", eps))
    width, per_stage, block = settings["width"], (settings["depth"] - 2) // 6, 0
    for stage, channels in enumerate((width, 2 * width, 4 * width)):
        for index in range(per_stage):
            stride = 2 if stage > 0 and index == 0 else 1
            name = f"blocks.{block}"
            out = relu(_bn(_conv_nchw(x, arrays[f"{name}.conv1.weight"], stride), arrays, f"{name}.bn1", eps))
            out = _bn(_conv_nchw(out, arrays[f"{name}.conv2.weight"], 1), arrays, f"{name}.bn2", eps)
            shortcut = x[:, :, ::stride, ::stride]
            extra = channels - shortcut.shape[1]
            shortcut = np.pad(shortcut, ((0, 0), (extra // 2, extra - extra // 2), (0, 0), (0, 0)))
            x = relu(out + shortcut)
            block += 1
    return x.mean(axis=(2, 3)) @ arrays["logits.weight"].T + arrays["logits.bias"]


def test_resnet20_export_is_the_torch_layout_and_gives_kerass_logits():
    keras.utils.set_random_seed(3)
    model = models.build("resnet20", num_classes=10, input_shape=(32, 32, 3))
    rng = np.random.default_rng(3)
    # Every BN array away from its initial value, so that a swapped or dropped one shows.
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, channels).astype("float32"))
            layer.beta.assign(rng.normal(0, 0.2, channels).astype("float32"))
            layer.moving_mean.assign(rng.normal(0, 0.2, channels).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, channels).astype("float32"))
    arrays = tool.torch_state_arrays(model)
    settings = tool.torch_resnet_settings(model)

    assert settings == {"depth": 20, "width": 16, "num_classes": 10, "bn_epsilon": pytest.approx(1e-5),
                        "bn_momentum": pytest.approx(0.1)}  # PyTorch's convention of Keras' 0.9
    assert len(arrays) == 4 + 19 * 5  # input mean/std, dense; 19 convolutions each with its BN
    assert arrays["conv.weight"].shape == (16, 3, 3, 3)
    assert arrays["blocks.3.conv1.weight"].shape == (32, 16, 3, 3)  # the first block of stage 2
    assert arrays["blocks.8.bn2.running_var"].shape == (64,) and arrays["logits.weight"].shape == (10, 64)
    assert all(array.dtype == np.float32 for array in arrays.values())
    first_kernel = keras.ops.convert_to_numpy(model.layers[2].kernel)  # HWIO
    np.testing.assert_array_equal(arrays["conv.weight"][5, 1, 0, 2], first_kernel[0, 2, 1, 5])

    images = rng.uniform(0, 1, (2, 32, 32, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(model(images, training=False))
    np.testing.assert_allclose(_numpy_resnet(arrays, settings, images), expected, atol=1e-4, rtol=1e-4)


def test_export_refuses_a_model_that_is_not_a_cifar_resnet():
    with pytest.raises(ValueError, match="CIFAR ResNet.*model='tiny'"):
        tool.torch_state_arrays(models.build("tiny", num_classes=10, input_shape=(8, 8, 3)))


def test_the_tool_times_the_benchs_clean_and_pgd7_trainers():
    from tfadv.bench import train as bench_train
    from tfadv.training.methods import AdversarialTraining

    trainers = bench_train.clean_and_pgd7_trainers("tiny")
    assert set(trainers) == {"clean", "pgd7"}
    pgd7 = trainers["pgd7"]
    assert isinstance(pgd7, AdversarialTraining) and not pgd7.paired and not pgd7.train_clean_accuracy
    assert pgd7.adversarial_fraction == 1.0  # trains on the adversarial batch only
    attack = pgd7.attack
    assert (attack.name, attack.steps, attack.random_start) == ("pgd", 7, True)
    assert (attack.eps, attack.step_size) == pytest.approx((8 / 255, 2 / 255))
    for trainer in trainers.values():
        config = trainer.optimizer.get_config()
        assert isinstance(trainer.optimizer, keras.optimizers.SGD) and config["momentum"] == pytest.approx(0.9)
        assert float(config["learning_rate"]) == pytest.approx(0.01)
    x, y = bench_train.random_batch(4, seed=1, num_classes=10)
    assert x.shape == (4, 32, 32, 3) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert y.dtype == np.int64 and set(y) <= set(range(10))


def test_interleaved_median_counts_warmups_and_rounds():
    calls = []
    ms = tool._peer.interleaved_median_ms({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3)
    assert calls == ["a", "a", "b", "b"] + ["a", "b"] * 3  # warm-ups per step, then interleaved rounds
    assert set(ms) == {"a", "b"} and all(value >= 0 for value in ms.values())
