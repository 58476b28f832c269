"""Weight decay: coupled (PyTorch's L2) against NumPy versions of PyTorch's update rules."""

import math
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfadv.config import ConfigError, load_config
from tfadv.training.optimizers import CoupledAdam, CoupledSGD, WarmupCosine, make_optimizer

STEPS = 5
WD = 5e-2  # large, so that a decay applied at the wrong place shows


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    w0 = rng.normal(size=(3, 4)).astype("float32")
    grads = [rng.normal(size=(3, 4)).astype("float32") for _ in range(STEPS)]
    return w0, grads


def _cosine_rates(base, total):
    return [base * 0.5 * (1 + math.cos(math.pi * t / total)) for t in range(STEPS)]


def torch_sgd(w, grads, rates, momentum, weight_decay, nesterov):
    """torch.optim.SGD.step (dampening 0), written out in NumPy, float64."""
    w = w.astype("float64")
    buffer = None
    for g, lr in zip(grads, rates):
        d = g + weight_decay * w
        if momentum:
            buffer = d.copy() if buffer is None else momentum * buffer + d
            d = d + momentum * buffer if nesterov else buffer
        w = w - lr * d
    return w


def torch_adam(w, grads, rates, weight_decay, beta_1=0.9, beta_2=0.999, eps=1e-8):
    """torch.optim.Adam.step (amsgrad False), written out in NumPy, float64."""
    w = w.astype("float64")
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t, (g, lr) in enumerate(zip(grads, rates), start=1):
        d = g + weight_decay * w
        m = beta_1 * m + (1 - beta_1) * d
        v = beta_2 * v + (1 - beta_2) * d * d
        w = w - lr * (m / (1 - beta_1**t)) / (np.sqrt(v / (1 - beta_2**t)) + eps)
    return w


def _run(optimizer, w0, grads, gradient_scale=1.0):
    variable = keras.Variable(w0)
    for g in grads:
        optimizer.apply_gradients([(tf.constant(g * gradient_scale), variable)])
    return variable.numpy()


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_coupled_sgd_equals_pytorch_sgd(nesterov, schedule):
    w0, grads = _problem()
    if schedule == "constant":
        lr, rates = 0.1, [0.1] * STEPS
    else:  # PyTorch applies the current rate to the whole buffer
        lr, rates = WarmupCosine(0.1, STEPS), _cosine_rates(0.1, STEPS)
    got = _run(CoupledSGD(lr, momentum=0.9, nesterov=nesterov, weight_decay=WD), w0, grads)
    expected = torch_sgd(w0, grads, rates, 0.9, WD, nesterov)
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
    # Decoupled (Keras' own) is measurably different at this decay.
    assert not np.allclose(expected, torch_sgd(w0, grads, rates, 0.9, 0.0, nesterov), atol=1e-3)


def test_coupled_sgd_without_momentum():
    w0, grads = _problem(1)
    got = _run(CoupledSGD(0.05, weight_decay=WD), w0, grads)
    np.testing.assert_allclose(got, torch_sgd(w0, grads, [0.05] * STEPS, 0.0, WD, False), atol=1e-6)


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_coupled_adam_equals_pytorch_adam(schedule):
    w0, grads = _problem(2)
    if schedule == "constant":
        lr, rates = 1e-2, [1e-2] * STEPS
    else:
        lr, rates = WarmupCosine(1e-2, STEPS), _cosine_rates(1e-2, STEPS)
    got = _run(CoupledAdam(lr, weight_decay=WD), w0, grads)
    np.testing.assert_allclose(got, torch_adam(w0, grads, rates, WD), atol=1e-6, rtol=0)


def test_coupled_decay_sees_unscaled_gradients_under_loss_scaling():
    w0, grads = _problem(3)
    optimizer = keras.optimizers.LossScaleOptimizer(
        CoupledSGD(0.1, momentum=0.9, weight_decay=WD), initial_scale=1024.0, dynamic_growth_steps=1000)
    got = _run(optimizer, w0, grads, gradient_scale=1024.0)
    np.testing.assert_allclose(got, torch_sgd(w0, grads, [0.1] * STEPS, 0.9, WD, False), atol=1e-6)


def test_excluded_variables_are_not_decayed():
    w0, grads = _problem(4)
    optimizer = CoupledSGD(0.1, momentum=0.9, weight_decay=WD)
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    kernel, bias = keras.Variable(w0, name="kernel"), keras.Variable(w0, name="bias")
    for g in grads:
        optimizer.apply_gradients([(tf.constant(g), kernel), (tf.constant(g), bias)])
    rates = [0.1] * STEPS
    np.testing.assert_allclose(kernel.numpy(), torch_sgd(w0, grads, rates, 0.9, WD, False), atol=1e-6)
    np.testing.assert_allclose(bias.numpy(), torch_sgd(w0, grads, rates, 0.9, 0.0, False), atol=1e-6)


def _train(mode, optimizer="sgd", weight_decay=WD):
    return SimpleNamespace(optimizer=optimizer, learning_rate=0.1 if optimizer == "sgd" else 1e-2,
                           momentum=0.9, nesterov=False, weight_decay=weight_decay,
                           weight_decay_mode=mode, schedule="constant", epochs=1, warmup_epochs=0,
                           step_milestones=[])


def test_make_optimizer_modes():
    w0, grads = _problem(5)
    rates = [0.1] * STEPS
    coupled = make_optimizer(_train("coupled"), 10)
    assert isinstance(coupled, CoupledSGD)
    np.testing.assert_allclose(_run(coupled, w0, grads), torch_sgd(w0, grads, rates, 0.9, WD, False),
                               atol=1e-6)
    # Decoupled is Keras' own SGD(weight_decay) and AdamW, unchanged.
    decoupled = make_optimizer(_train("decoupled"), 10)
    keras_own = keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=WD)
    np.testing.assert_array_equal(_run(decoupled, w0, grads), _run(keras_own, w0, grads))
    adamw = make_optimizer(_train("decoupled", "adam"), 10)
    assert isinstance(adamw, keras.optimizers.AdamW)
    np.testing.assert_array_equal(_run(adamw, w0, grads),
                                  _run(keras.optimizers.AdamW(1e-2, weight_decay=WD), w0, grads))
    adam = make_optimizer(_train("coupled", "adam"), 10)
    np.testing.assert_allclose(_run(adam, w0, grads), torch_adam(w0, grads, [1e-2] * STEPS, WD), atol=1e-6)
    with pytest.raises(ValueError, match="weight_decay_mode"):
        make_optimizer(_train("l2"), 10)


def test_config_default_is_coupled_and_mode_is_validated():
    assert load_config(data={}).train.weight_decay_mode == "coupled"
    assert load_config(data={"train": {"weight_decay_mode": "decoupled"}}).train.weight_decay_mode == "decoupled"
    with pytest.raises(ConfigError, match="weight_decay_mode"):
        load_config(data={"train": {"weight_decay_mode": "l2"}})


@pytest.mark.parametrize("cls", [CoupledSGD, CoupledAdam])
def test_coupled_optimizers_round_trip_through_keras_serialization(cls):
    optimizer = cls(WarmupCosine(0.1, 100, 5), weight_decay=WD)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored) is cls and restored.coupled_weight_decay == WD
    assert restored.weight_decay is None  # not decoupled as well
    w0, grads = _problem(6)
    np.testing.assert_array_equal(_run(optimizer, w0, grads), _run(restored, w0, grads))


def test_mirrored_strategy_decays_once(two_cpu_strategy):
    """Two replicas: the decay is added to the all-reduced gradient, once."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(16, 4)).astype("float32")
    y = rng.normal(size=(16, 3)).astype("float32")

    def fit(strategy):
        with strategy.scope():
            model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, kernel_initializer="ones")])
            model.compile(optimizer=CoupledSGD(0.05, momentum=0.9, weight_decay=WD), loss="mse")
        model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
        return model.get_weights()

    single = fit(tf.distribute.get_strategy())
    mirrored = fit(two_cpu_strategy)
    for a, b in zip(single, mirrored):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def multistep_lr_np(base, milestones, epoch, gamma=0.1):
    """torch.optim.lr_scheduler.MultiStepLR's rate during epoch ``epoch`` (stepped once per epoch)."""
    return base * gamma ** sum(1 for m in milestones if m <= epoch)


def test_step_schedule_equals_pytorch_multistep_lr_step_by_step():
    """The clean ResNet-32 recipe (akamaster/pytorch_resnet_cifar10 trainer.py): ÷10 at epochs 100, 150."""
    steps_per_epoch, milestones = 3, [2, 4]
    train = SimpleNamespace(optimizer="sgd", learning_rate=0.1, momentum=0.0, nesterov=False, weight_decay=0.0,
                            weight_decay_mode="coupled", schedule="step", epochs=6, warmup_epochs=0,
                            step_milestones=milestones)
    optimizer = make_optimizer(train, steps_per_epoch)
    variable = keras.Variable(np.zeros(1, "float32"))
    seen = []
    for step in range(6 * steps_per_epoch):
        before = variable.numpy().copy()
        optimizer.apply_gradients([(tf.constant([-1.0]), variable)])  # plain SGD: moves by the rate
        seen.append(float(variable.numpy()[0] - before[0]))
    expected = [multistep_lr_np(0.1, milestones, step // steps_per_epoch) for step in range(6 * steps_per_epoch)]
    np.testing.assert_allclose(seen, expected, rtol=1e-3)  # float32 differences of the variable
