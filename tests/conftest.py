"""Shared test set-up.

TensorFlow's devices can be configured only before first use, so the two
logical CPU devices that the MirroredStrategy tests need are made here, once,
for the whole session. Single-device code is unaffected: it runs on CPU:0.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import tfadv  # noqa: E402,F401  (imports TensorFlow quietly)
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)


@pytest.fixture(autouse=True)
def _seed_and_policy():
    """Every test starts from the same seeds and the float32 policy."""
    import keras

    keras.utils.set_random_seed(1234)
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="session")
def two_cpu_strategy():
    # One per session: two MirroredStrategy objects in one process reuse collective keys.
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


@pytest.fixture
def toy_images():
    """A small reproducible batch of images in [0, 1] with labels."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(16, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, size=(16,)).astype("int64")
    return x, y
