"""Paper-1 offline fine-tuning, BN-only fine-tuning and masking interpolation."""

import json

import h5py

import keras
import numpy as np
import pytest

from tfadv import attacks, models
from tfadv.attacks.spec import SEED_STRIDE
from tfadv.config import ExperimentConfig
from tfadv.layers import ConditionedBatchNormalization
from tfadv.models.conditioning import condition_inputs
from tfadv.training import methods

SHAPE = (8, 8, 3)
EPS = 8 / 255
FGSM = {"name": "fgsm", "eps": EPS}


DATA = {"count": 14, "seed": 1, "shape": SHAPE}  # the conftest data fixture


def _tiny():
    return models.build("tiny", input_shape=SHAPE)


def _moved(model, x):
    """Give the BN layers non-trivial statistics and affine parameters."""
    model(x, training=True)
    rng = np.random.default_rng(2)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.gamma.assign(rng.uniform(0.5, 1.5, layer.gamma.shape).astype("float32"))
            layer.beta.assign(rng.normal(0, 0.3, layer.beta.shape).astype("float32"))
    return model


# ------------------------------------------------------------ stored adversarial set


def test_generated_set_is_the_attack_output_with_its_settings_recorded(data, tmp_path):
    x, y = data
    model = _moved(_tiny(), x)
    path = methods.generate_adversarial_examples(model, x, y, FGSM, tmp_path / "adv.h5", chunk_size=5)
    images, labels, attributes = methods.load_adversarial_examples(path)
    np.testing.assert_allclose(images, attacks.fgsm(model, x, y, EPS), atol=1e-6)
    np.testing.assert_array_equal(labels, y)
    assert json.loads(attributes["attack"])["name"] == "fgsm"
    assert json.loads(attributes["attack"])["eps"] == pytest.approx(EPS)
    assert attributes["completed"] == len(x) and attributes["model_name"] == "tiny"


def test_generation_resumes_after_the_last_completed_chunk(data, tmp_path):
    x, y = data
    model = _moved(_tiny(), x)
    path = tmp_path / "adv.h5"
    methods.generate_adversarial_examples(model, x, y, FGSM, path, chunk_size=5)
    expected = methods.load_adversarial_examples(path)[0]
    with h5py.File(path, "a") as handle:  # as if killed after the first chunk
        handle["adversarial_images"][:5] = -1.0  # marks rows that must not be redone
        handle["adversarial_images"][5:] = 0.0
        handle.attrs["completed"] = 5
    with pytest.raises(ValueError, match="incomplete"):
        methods.load_adversarial_examples(path)
    methods.generate_adversarial_examples(model, x, y, FGSM, path, chunk_size=5)
    images = methods.load_adversarial_examples(path)[0]
    np.testing.assert_array_equal(images[:5], -1.0)
    np.testing.assert_allclose(images[5:], expected[5:], atol=1e-6)


def test_random_start_sets_are_seeded_per_chunk_so_a_resumed_set_equals_a_fresh_one(data, tmp_path):
    x, y = data
    model = _tiny()
    pgd = {"name": "pgd", "eps": EPS, "steps": 1, "seed": 5}
    fresh = methods.load_adversarial_examples(
        methods.generate_adversarial_examples(model, x, y, pgd, tmp_path / "fresh.h5", chunk_size=5))[0]
    path = tmp_path / "resumed.h5"
    methods.generate_adversarial_examples(model, x, y, pgd, path, chunk_size=5)
    with h5py.File(path, "a") as handle:  # as if killed after the first chunk
        handle["adversarial_images"][5:] = 0.0
        handle.attrs["completed"] = 5
    methods.generate_adversarial_examples(model, x, y, pgd, path, chunk_size=5)
    np.testing.assert_array_equal(methods.load_adversarial_examples(path)[0], fresh)
    # Chunk b is PGD from the seed 5 · SEED_STRIDE + b.
    chunk = attacks.pgd(model, x[5:10], y[5:10], EPS, EPS / 4, 1, seed=5 * SEED_STRIDE + 1)
    np.testing.assert_allclose(fresh[5:10], chunk, atol=1e-6)


def test_generation_refuses_to_mix_settings(data, tmp_path):
    x, y = data
    model = _tiny()
    path = tmp_path / "adv.h5"
    methods.generate_adversarial_examples(model, x, y, FGSM, path)
    with pytest.raises(ValueError, match="attack"):
        methods.generate_adversarial_examples(model, x, y, {"name": "fgsm", "eps": 4 / 255}, path)
    with pytest.raises(ValueError, match="data_sha256"):
        methods.generate_adversarial_examples(model, x[::-1], y[::-1], FGSM, path)


def test_offline_finetuning_trains_on_the_one_to_one_union(data, tmp_path):
    x, y = data
    inner = _tiny()
    before = [w.copy() for w in inner.get_weights()]
    with pytest.raises(ValueError, match="generate_adversarial_examples"):  # building writes nothing
        methods.wrap(inner, "finetune", attack=FGSM, train_arrays=(x, y),
                     adversarial_examples=str(tmp_path / "adv.h5"))
    assert not (tmp_path / "adv.h5").exists()
    methods.generate_adversarial_examples(inner, x, y, FGSM, tmp_path / "adv.h5")
    model = methods.wrap(inner, "finetune", attack=FGSM, train_arrays=(x, y),
                         adversarial_examples=str(tmp_path / "adv.h5"))
    assert isinstance(model, methods.OfflineFineTuning)
    batch = next(iter(model.training_dataset(2 * len(x), seed=0)))
    inputs, labels = batch
    flags = inputs["adversarial"].numpy()
    assert flags.sum() == len(x)  # one full pass: every clean and every adversarial image once
    stored = methods.load_adversarial_examples(tmp_path / "adv.h5")[0]
    pool = {flag: images for flag, images in ((0.0, x), (1.0, stored))}
    for image, label, flag in zip(inputs["images"].numpy(), labels.numpy(), flags):
        index = np.flatnonzero(np.all(pool[flag] == image, axis=(1, 2, 3)))
        assert len(index) == 1 and y[index[0]] == label

    model.compile(optimizer=keras.optimizers.SGD(0.1))
    history = model.fit(model.training_dataset(8, seed=0), steps_per_epoch=2, epochs=1,
                        validation_data=(x, y), verbose=0).history
    assert {"accuracy", "robust_accuracy", "val_robust_accuracy"} <= set(history)
    assert any(not np.array_equal(a, b) for a, b in zip(before, inner.get_weights()))


# ------------------------------------------------------------ BN-only fine-tuning


def test_bn_finetuning_with_frozen_statistics_changes_only_gamma_and_beta(data):
    x, y = data
    inner = _moved(_tiny(), x)
    before = {w.path: w.numpy().copy() for w in inner.weights}
    model = methods.wrap(inner, "bn_finetune", attack=FGSM, freeze_statistics=True)
    assert {w.path.split("/")[-1] for w in model.trainable_variables} == {"gamma", "beta"}
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    model.fit(x, y, batch_size=7, epochs=1, verbose=0)
    for w in inner.weights:
        changed = not np.array_equal(before[w.path], w.numpy())
        assert changed == (w.path.split("/")[-1] in ("gamma", "beta")), w.path


def test_interpolation_model_reproduces_both_models_and_mixes_their_masking(data):
    x, y = data
    robust = _moved(_tiny(), x)
    clean = keras.models.clone_model(robust)
    clean.set_weights(robust.get_weights())
    clean_method = methods.wrap(clean, "bn_finetune", attack=FGSM, freeze_statistics=True)
    clean_method.compile(optimizer=keras.optimizers.SGD(0.5))
    clean_method.fit(x, y, batch_size=7, epochs=2, verbose=0)

    knob = methods.interpolation_model(clean, robust)
    assert models.is_conditioned(knob)
    np.testing.assert_allclose(knob(condition_inputs(x, 0.0)), clean(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(knob(condition_inputs(x, 1.0)), robust(x), rtol=1e-5, atol=1e-5)
    assert not np.allclose(clean(x), robust(x), atol=1e-3)

    # p = 0.4: a plain model whose BN γ, β are the mix 0.6·clean + 0.4·robust.
    mixed = keras.models.clone_model(robust)
    mixed.set_weights([0.6 * c + 0.4 * r for c, r in zip(clean.get_weights(), robust.get_weights())])
    np.testing.assert_allclose(knob(condition_inputs(x, 0.4)), mixed(x), rtol=1e-5, atol=1e-5)
    assert sum(isinstance(l, ConditionedBatchNormalization) for l in knob.layers) == 2


def test_interpolation_refuses_models_that_differ_beyond_the_masking(data):
    x, _ = data
    robust = _moved(_tiny(), x)
    other = _tiny()
    with pytest.raises(ValueError, match="differs"):
        methods.interpolation_model(other, robust)


# ------------------------------------------------------------ config entry point


def test_wrap_from_config_builds_each_method(data, tmp_path):
    x, y = data
    config = ExperimentConfig()
    config.method.attack.name = "fgsm"
    config.method.kind = "robmask"
    config.method.attack.step_size = 2 / 255
    robmask = methods.wrap_from_config(models.build("tiny", input_shape=SHAPE, norm="robmask"), config)
    assert isinstance(robmask, methods.RobMask) and robmask.step_fraction == pytest.approx(0.25)
    assert robmask.steps == 7 and robmask.eps_max == pytest.approx(8 / 255) and robmask.random_start

    config.method.kind = "standard"
    plain = _tiny()
    assert methods.wrap_from_config(plain, config) is plain
    with pytest.raises(ValueError, match="advprop or robmask"):
        methods.wrap_from_config(models.build("tiny", input_shape=SHAPE, norm="robmask"), config)

    config.method.kind = "finetune"
    with pytest.raises(ValueError, match="init_from"):
        methods.wrap_from_config(_tiny(), config)
    config.model.init_from = "pretrained.keras"
    inner = _tiny()
    with pytest.raises(ValueError, match="No stored adversarial set"):
        methods.wrap_from_config(inner, config, train_arrays=(x, y), run_dir=str(tmp_path))
    assert not (tmp_path / methods.ADVERSARIAL_EXAMPLES_FILE).exists()  # building writes nothing
    path = methods.prepare_stored_set(inner, config, (x, y), str(tmp_path))
    assert path == str(tmp_path / methods.ADVERSARIAL_EXAMPLES_FILE)
    offline = methods.wrap_from_config(inner, config, train_arrays=(x, y), run_dir=str(tmp_path))
    assert isinstance(offline, methods.OfflineFineTuning)
    with pytest.raises(ValueError, match="model_sha256"):  # another model than the stored set's
        methods.wrap_from_config(_tiny(), config, train_arrays=(x, y), run_dir=str(tmp_path))
    config.method.online = True
    assert methods.prepare_stored_set(_tiny(), config, (x, y), str(tmp_path)) is None
    online = methods.wrap_from_config(_tiny(), config)
    assert isinstance(online, methods.AdversarialTraining) and online.paired

    config.method.attack.name = "apgd-ce"
    with pytest.raises(ValueError, match="attack='apgd-ce'"):
        methods.wrap_from_config(_tiny(), config)


def test_the_finetune_kind_prepares_explicitly_and_a_waiting_worker_reads_the_chiefs_set(data, tmp_path):
    """MethodKind protocol of offline fine-tuning: prepare writes the set and its 1 − SSIM record,
    building reads nothing, a non-chief worker waits for the chief's set instead of crafting one."""
    import os

    import tensorflow as tf

    from tfadv.metrics import ssim_distance
    from tfadv.training.distribute import WorkerFiles, WorkerLost

    x, y = data
    config = ExperimentConfig()
    config.method.kind, config.method.attack.name = "finetune", "fgsm"
    config.model.init_from = "pretrained.keras"
    config.data.batch_size = 4
    kind = methods.method_kind("finetune")
    inner = _moved(_tiny(), x)
    files = WorkerFiles(str(tmp_path / "run"), tf.distribute.get_strategy())

    def waited(ready, what):
        return files.wait_for_chief(ready, what, timeout_seconds=0.5)

    with pytest.raises(WorkerLost, match="stored adversarial set .* no progress for 0.5 s"):
        kind.prepare(inner, config, (x, y), str(tmp_path / "run"), wait=waited)
    assert not os.path.exists(tmp_path / "run")  # the waiting worker wrote nothing

    chief = kind.prepare(inner, config, (x, y), str(tmp_path / "run"))
    with h5py.File(chief.stored_set, "r") as handle:
        stored = handle["adversarial_images"][...]
    expected = float(np.mean(ssim_distance(x, stored, convention="gaussian").per_image))
    (record,) = chief.summary.values()
    assert record["num_examples"] == len(x)
    assert record["ssim_distance"]["gaussian"] == pytest.approx(expected, rel=1e-5)
    before = os.stat(chief.stored_set).st_mtime_ns
    worker = kind.prepare(inner, config, (x, y), str(tmp_path / "run"), wait=waited)
    np.testing.assert_array_equal(worker.adversarial_images, stored)
    assert worker.summary == {} and os.stat(chief.stored_set).st_mtime_ns == before

    method = kind.from_config(inner, config, worker)
    assert isinstance(method, methods.OfflineFineTuning)
    assert kind.examples_per_epoch(config, len(x)) == 2 * len(x)
    assert [kind for kind, entry in methods.METHODS_BY_KIND.items() if entry.tunable] == list(methods.TUNABLE_METHODS)


def test_writing_the_stored_set_shows_progress_in_images_per_second(data, tmp_path, capsys):
    x, y = data
    model = _tiny()
    methods.generate_adversarial_examples(model, x[:10], y[:10], FGSM, tmp_path / "adv.h5", chunk_size=5,
                                          progress=True)
    out = capsys.readouterr().out
    assert "Writing the stored adversarial set: FGSM ε=8/255, 10 images" in out
    assert "10/10" in out and "images/s" in out
    methods.generate_adversarial_examples(model, x[:10], y[:10], FGSM, tmp_path / "adv.h5", progress=True)
    assert capsys.readouterr().out == ""  # complete: nothing to write, nothing shown


def test_online_finetuning_trains_on_each_clean_batch_and_its_adversarial_copy():
    # The released code's online 1:1: a step sees the clean batch and the
    # adversarial versions of the same images (2B), crafted against the current model.
    import tensorflow as tf

    inner = _tiny()
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (8, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 10, 8).astype("int64")
    x_adv = attacks.fgsm(inner, x, y, 8 / 255).numpy()
    method = methods.wrap(inner, "finetune", attack={"name": "fgsm", "eps": 8 / 255}, online=True)
    method.compile(optimizer=keras.optimizers.SGD(0.0))  # no update: the loss is the one to check
    logs = method.train_on_batch(x, y, return_dict=True)
    logits = inner(np.concatenate([x_adv, x]), training=True)
    expected = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
        np.concatenate([y, y]), logits, from_logits=True)).numpy()
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)
    robust = np.mean(np.argmax(logits[:8], -1) == y)
    clean = np.mean(np.argmax(logits[8:], -1) == y)
    assert logs["robust_accuracy"] == pytest.approx(robust) and logs["accuracy"] == pytest.approx(clean)
    with pytest.raises(ValueError, match="adversarial_fraction must be 1"):
        methods.AdversarialTraining(inner, {"name": "fgsm", "eps": 0.1}, adversarial_fraction=0.5, paired=True)
