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


@pytest.fixture
def data(request):
    """Random images in [0, 1] with labels of 10 classes.

    A test module may set ``DATA = {"count": 14, "seed": 1, "shape": (8, 8, 3)}``
    (these are the defaults but for count 16 and seed 0).
    """
    settings = {"count": 16, "seed": 0, "shape": (8, 8, 3), **getattr(request.module, "DATA", {})}
    rng = np.random.default_rng(settings["seed"])
    x = rng.uniform(0, 1, size=(settings["count"], *settings["shape"])).astype("float32")
    y = rng.integers(0, 10, size=(settings["count"],)).astype("int64")
    return x, y


def _train_toy_mlp(classes, count, seed, epochs, directions_per_class=False):
    """A small MLP trained on ``classes`` linearly separable classes of 6×6 images in [0.2, 0.8].

    The labels are ``argmax((x - 0.5) @ W)`` for a random W of shape
    [36, classes] (drawn as [classes, 36] and transposed with
    ``directions_per_class``); the MLP (32 ReLU units) is fitted in one batch
    with Adam(0.03). Returns ``(model, x, y)``.
    """
    import keras

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.2, 0.8, size=(count, 6, 6, 1)).astype("float32")
    weights = rng.normal(size=(classes, 36)).T if directions_per_class else rng.normal(size=(36, classes))
    y = np.argmax((x.reshape(count, -1) - 0.5) @ weights, axis=-1).astype("int64")
    model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(32, activation="relu"), keras.layers.Dense(classes)])
    model.compile(keras.optimizers.Adam(0.03), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=epochs, batch_size=count, verbose=0)
    return model, x, y


@pytest.fixture(scope="session")
def train_toy_mlp():
    """The function that trains the attacks' toy MLPs (see :func:`_train_toy_mlp`)."""
    return _train_toy_mlp
