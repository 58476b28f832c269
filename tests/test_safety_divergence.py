"""Divergence stops loudly (issue 16, point 2): NaN/inf loss in training, NaN logits in evaluation."""
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml

from tfadv.cli.main import main
from tfadv.config import load_config
from tfadv.training import read_history, train_from_config
from tfadv.training.divergence import TrainingDiverged

TINY = {
    "model": {"name": "tiny"},
    "data": {"limit_train": 128, "limit_test": 32, "batch_size": 32, "augment": False},
    "train": {"epochs": 3, "verbose": 0, "learning_rate": 0.05, "schedule": "constant"},
}


def _config(tmp_path, **train):
    data = {**TINY, "name": "run", "output_dir": str(tmp_path)}
    data["train"] = {**TINY["train"], **train}
    return data


def test_cli_train_with_an_exploding_learning_rate_stops_with_one_line_and_exit_3(tmp_path, capsys):
    path = tmp_path / "exploding.yaml"
    path.write_text(yaml.safe_dump(_config(tmp_path, learning_rate=1e10)))
    assert main(["train", str(path)]) == 3
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert "training diverged: loss is" in err and "at epoch 1, step" in err
    run = tmp_path / "run"
    assert not (run / "model.keras").exists() and read_history(run / "history.csv") == []
    assert tf.train.latest_checkpoint(str(run / "checkpoints")) is None


def test_divergence_in_epoch_2_keeps_epoch_1s_checkpoint_and_writes_nothing_from_nan_weights(
        tmp_path, monkeypatch):
    import tfadv.training.runner as runner

    # A sane rate for epoch 1 (4 steps), then one that blows the weights up at once.
    def exploding_optimizer(train, steps_per_epoch):
        rates = keras.optimizers.schedules.PiecewiseConstantDecay([steps_per_epoch], [0.05, 1e12])
        return keras.optimizers.SGD(rates, momentum=0.9)

    monkeypatch.setattr(runner, "make_optimizer", exploding_optimizer)
    config = load_config(data=_config(tmp_path))
    with pytest.raises(TrainingDiverged) as raised:
        train_from_config(config)
    assert raised.value.epoch == 2 and 1 <= raised.value.step <= 4
    assert "last good checkpoint (epoch 1)" in str(raised.value)
    run = tmp_path / "run"
    assert [int(r["epoch"]) for r in read_history(run / "history.csv")] == [1]
    assert not (run / "model.keras").exists()
    latest = tf.train.latest_checkpoint(str(run / "checkpoints"))
    assert latest.endswith("ckpt-1")
    reader = tf.train.load_checkpoint(latest)
    values = [reader.get_tensor(name) for name, _ in tf.train.list_variables(latest)
              if "model" in name and "OPTIMIZER_SLOT" not in name]
    floats = [v for v in values if np.issubdtype(np.asarray(v).dtype, np.floating)]
    assert floats and all(np.isfinite(v).all() for v in floats)
    # The folder is free again: the lock was released when the error propagated.
    monkeypatch.undo()
    assert not os.path.getsize(run / ".tfadv.lock")


def _nan_under_attack_model():
    """A tiny model whose logits turn NaN once an image leaves the 1/255 grid (PGD's random start does)."""
    from tfadv import models

    inner = models.build("tiny", num_classes=10)

    def model_fn(images, training=False):
        logits = inner(images, training=training)
        off_grid = tf.reduce_max(tf.abs(images * 255.0 - tf.round(images * 255.0)), axis=[1, 2, 3]) > 1e-3
        return tf.where(off_grid[:, None], tf.fill(tf.shape(logits), np.nan), logits)

    return inner, model_fn


def test_eval_of_a_model_with_nan_logits_names_model_and_attack(tmp_path):
    from tfadv.evaluation import NonFiniteLogitsError, evaluate, load_results

    inner, model_fn = _nan_under_attack_model()
    x = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3)).astype(np.float32) / 255.0
    y = np.arange(8) % 10
    with pytest.raises(NonFiniteLogitsError) as raised:
        evaluate({"broken": model_fn}, x, y, attacks=[{"name": "pgd", "eps": "8/255", "steps": 2}],
                 out_dir=tmp_path, progress=False, plots=False)
    message = str(raised.value)
    assert "model 'broken'" in message and "PGD-2 ε=8/255" in message
    stored = load_results(tmp_path)["models"]["broken"]["parts"]
    assert list(stored) == ["clean"] or all("pgd" not in key for key in stored)  # no zeros recorded


def test_cli_eval_of_a_nan_model_exits_3_with_one_line(tmp_path, capsys):
    from tfadv import models

    model = models.build("tiny", num_classes=10)
    model.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])
    path = tmp_path / "nan.keras"
    model.save(path)
    assert main(["eval", str(path), "--limit", "8", "--attack", "fgsm:eps=1/255",
                 "--out", str(tmp_path / "eval")]) == 3
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "model 'nan' returned NaN or infinite logits on clean images" in err
