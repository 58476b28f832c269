"""train.validation_attack and train.keep_best (issue 22, point 4)."""
import json

import keras
import numpy as np
import pytest
import yaml

from tfadv.attacks import fgsm
from tfadv.attacks.spec import AttackSpec, attack_from_text
from tfadv.config import ConfigError, load_config
from tfadv.data import load_arrays
from tfadv.models import build
from tfadv.training import read_history, train_from_config
from tfadv.training.callbacks import RobustValidation


def test_attack_from_text_reads_the_one_line_form():
    spec = attack_from_text("pgd:eps=8/255,steps=10,random_start=false")
    assert spec == AttackSpec.create({"name": "pgd", "eps": 8 / 255, "steps": 10, "random_start": False})
    with pytest.raises(ValueError, match="key=value"):
        attack_from_text("pgd:eps")


def test_strong_robust_accuracy_equals_an_independent_count_under_plain_fit():
    x, y = load_arrays("digits", "test")
    x, y = x[:64], y[:64]
    model = build("tiny", num_classes=10, input_shape=x.shape[1:])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    callback = RobustValidation((x, y), attack="fgsm:eps=2/255", examples=48, batch_size=16)
    history = model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[callback])
    # The independent count: FGSM on the same 48 examples, per batch, and NumPy accuracy.
    x_adv = np.concatenate([np.asarray(fgsm(model, x[i:i + 16], y[i:i + 16], eps=2 / 255))
                            for i in range(0, 48, 16)])
    expected = np.mean(np.argmax(np.asarray(model(x_adv)), -1) == y[:48])
    assert history.history["val_strong_robust_accuracy"][-1] == pytest.approx(expected)


def _config(tmp_path, **train):
    return {"name": "run", "output_dir": str(tmp_path), "model": {"name": "tiny"},
            "data": {"limit_train": 96, "limit_test": 48, "batch_size": 32, "augment": False},
            "method": {"kind": "adversarial", "attack": {"name": "fgsm", "eps": "2/255"}},
            "train": {"epochs": 3, "verbose": 0, "learning_rate": 0.05, "schedule": "constant",
                      "validation_attack": "pgd:eps=2/255,steps=3", "validation_examples": 32,
                      "keep_best": "robust", **train}}


def test_keep_best_keeps_the_most_robust_epoch_and_survives_resume(tmp_path):
    config = load_config(data=_config(tmp_path))
    train_from_config(config, stop_after_epochs=2)
    run = tmp_path / "run"
    first = json.loads((run / "best.json").read_text())
    assert (run / "model_best.keras").exists() and first["metric"] == "val_strong_robust_accuracy"
    result = train_from_config(config)  # resumes at epoch 3
    assert result.resumed_from_epoch == 2
    rows = read_history(run / "history.csv")
    values = [float(r["val_strong_robust_accuracy"]) for r in rows]
    best = json.loads((run / "best.json").read_text())
    # The first epoch with the highest value (a later tie does not replace it), across the resume.
    assert best["epoch"] == int(np.argmax(values)) + 1 and best["value"] == pytest.approx(max(values))
    best_model = keras.saving.load_model(run / "model_best.keras")
    if best["epoch"] == 3:
        np.testing.assert_allclose(best_model.get_weights()[0], result.model.get_weights()[0])


def test_bad_validation_attack_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="train.validation_attack"):
        load_config(data=_config(tmp_path, validation_attack="pgd:eps=2/255,stepz=3"))


def test_train_from_a_brought_plain_model_converts_it_to_robmask(tmp_path):
    """model: {init_from: plain.keras, norm: robmask} converts, trains and exports with serve_tradeoff."""
    from tfadv import layers
    from tfadv.export.signatures import ServingFunctions

    plain = build("tiny", num_classes=10, input_shape=(32, 32, 3))
    plain.save(tmp_path / "plain.keras")
    data = _config(tmp_path, epochs=1, steps_per_epoch=2, keep_best="robust", validation_examples=16)
    data["model"] = {"init_from": str(tmp_path / "plain.keras"), "norm": "robmask", "preprocess": "0..1"}
    data["method"] = {"kind": "robmask", "eps_max": "2/255", "pgd_steps": 2}
    result = train_from_config(load_config(data=data))
    saved = keras.saving.load_model(tmp_path / "run" / "model_best.keras")
    norms = [layer for layer in saved.layers if isinstance(layer, layers.ConditionedBatchNormalization)]
    assert len(norms) == 2 and isinstance(saved.layers[1], layers.PixelPreprocessing)
    assert "serve_tradeoff" in ServingFunctions(result.model).endpoints()
