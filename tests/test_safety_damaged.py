"""Damaged files are named, not trusted (issue 16, point 3): each one truncated or corrupted.

Recomputable files (a checkpoint with an older one beside it, the stored
adversarial set, a surface) are recomputed with a warning and give the
undamaged result; the others (eval.json, a SavedModel) fail with an error
naming the file and what to do.
"""
import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from tfadv import models
from tfadv.cli.main import main
from tfadv.config import load_config
from tfadv.training import read_history, train_from_config


def _truncate(path, keep=0.5):
    size = os.path.getsize(path)
    with open(path, "r+b") as handle:
        handle.truncate(int(size * keep))


def _flip_bytes(path, offset, count=64):
    with open(path, "r+b") as handle:
        handle.seek(offset)
        data = bytearray(handle.read(count))
        handle.seek(offset)
        handle.write(bytes(b ^ 0xFF for b in data))


def test_damaged_checkpoint_falls_back_to_the_previous_one_and_retrains(tmp_path):
    data = {"name": "run", "output_dir": str(tmp_path), "model": {"name": "tiny"},
            "data": {"limit_train": 64, "limit_test": 16, "batch_size": 32, "augment": False},
            "train": {"epochs": 3, "verbose": 0, "learning_rate": 0.05}}
    config = load_config(data=data)
    train_from_config(config, stop_after_epochs=2)
    checkpoints = tmp_path / "run" / "checkpoints"
    (data_file,) = glob.glob(str(checkpoints / "ckpt-2.data-*"))
    _truncate(data_file)
    with pytest.warns(UserWarning, match=r"ckpt-2 .*resuming from .*ckpt-1 \(epoch 1\)"):
        result = train_from_config(config)
    assert result.completed and result.resumed_from_epoch == 1
    assert [int(r["epoch"]) for r in read_history(tmp_path / "run" / "history.csv")] == [1, 2, 3]



def test_no_readable_checkpoint_is_an_error_naming_them_and_what_to_do(tmp_path):
    from tfadv.training.callbacks import EpochCheckpoint

    weights = tf.Variable(np.arange(1000, dtype=np.float32))
    saver = EpochCheckpoint(str(tmp_path), {"weights": weights})
    saver.on_epoch_end(0)
    saver.on_epoch_end(1)
    for data_file in glob.glob(str(tmp_path / "ckpt-*.data-*")):
        _flip_bytes(data_file, 0, os.path.getsize(data_file))
    with pytest.raises(ValueError, match=r"No readable checkpoint in .*: .*ckpt-2.*ckpt-1.*"
                                         r"Delete the checkpoints folder"):
        EpochCheckpoint(str(tmp_path), {"weights": tf.Variable(np.zeros(1000, np.float32))}).restore()


def _stored_set(path, model, x, y):
    from tfadv.training.methods import generate_adversarial_examples, load_adversarial_examples

    generate_adversarial_examples(model, x, y, {"name": "pgd", "eps": "8/255", "steps": 2}, path,
                                  chunk_size=8, jit_compile=False)
    return load_adversarial_examples(path)[0]


def test_damaged_stored_adversarial_set_is_recomputed_with_a_warning(tmp_path, toy_images):
    import h5py

    x, y = toy_images
    model = models.build("tiny", num_classes=10)
    path = str(tmp_path / "adversarial_examples.h5")
    expected = _stored_set(path, model, x, y)
    # A corrupted chunk (its fletcher32 checksum fails): regenerated from that chunk on.
    with h5py.File(path, "r") as handle:
        offset = handle["adversarial_images"].id.get_chunk_info(1).byte_offset
    _flip_bytes(path, offset + 100)
    with pytest.warns(UserWarning, match="examples 8.. are damaged"):
        again = _stored_set(path, model, x, y)
    np.testing.assert_array_equal(again, expected)
    # A truncated file: generated again whole.
    _truncate(path)
    with pytest.warns(UserWarning, match="is damaged .*generating the stored adversarial set again"):
        again = _stored_set(path, model, x, y)
    np.testing.assert_array_equal(again, expected)


def test_partial_surface_truncated_is_recomputed_with_a_warning(tmp_path, toy_images):
    from tfadv.landscape import random_directions, sweep_surface

    x, y = toy_images
    model = models.build("tiny", num_classes=10)
    directions = random_directions(model, dim=1, seed=0)
    grid = np.linspace(-1, 1, 4)
    whole = sweep_surface(model, directions, x, y, str(tmp_path / "whole.h5"), grid, progress=False)
    path = str(tmp_path / "surface.h5")
    sweep_surface(model, directions, x, y, path, grid, progress=False, max_points=2)
    _truncate(path)
    with pytest.warns(UserWarning, match="surface.h5 is damaged .*recomputing it"):
        again = sweep_surface(model, directions, x, y, path, grid, progress=False)
    assert again["complete"] and again["computed"] == 4
    np.testing.assert_array_equal(again["loss"], whole["loss"])


def test_truncated_eval_json_is_named_with_what_to_do(tmp_path, capsys):
    model = models.build("tiny", num_classes=10)
    path = tmp_path / "tiny.keras"
    model.save(path)
    out = tmp_path / "eval"
    args = ["eval", str(path), "--limit", "8", "--attack", "fgsm:eps=1/255", "--out", str(out)]
    assert main(args) == 0
    _truncate(out / "eval.json")
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert str(out / "eval.json") in err and "--force" in err
    assert main(args + ["--force"]) == 0  # recomputes
    from tfadv.evaluation import load_results

    assert load_results(out)["models"]["tiny"]["parts"]


def test_truncated_savedmodel_is_named(tmp_path):
    from tfadv.evaluation import load_model
    from tfadv.export import export_model

    out = tmp_path / "export"
    export_model(models.build("tiny", num_classes=10), out)
    (variables,) = glob.glob(str(out / "variables" / "variables.data-*"))
    _truncate(variables)
    with pytest.raises(ValueError, match=r"SavedModel at path=.*export.: it is damaged or incomplete .*tfadv export"):
        load_model(str(out))
    _truncate(out / "saved_model.pb", 0.3)
    with pytest.raises(ValueError, match=r"SavedModel at path=.*export.: it is damaged or incomplete"):
        load_model(str(out))
