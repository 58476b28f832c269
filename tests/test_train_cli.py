"""`tfadv train` end to end: run folder, resume after a kill, determinism, errors."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from tfadv.cli.main import main
from tfadv.config import load_config
from tfadv.training import read_history, train_from_config

TINY = {
    "model": {"name": "tiny"},
    "data": {"limit_train": 256, "limit_test": 64, "batch_size": 32, "augment": False},
    "train": {"epochs": 2, "verbose": 0, "learning_rate": 0.05},
}


def _config(tmp_path, name="run", **train):
    data = {**TINY, "name": name, "output_dir": str(tmp_path)}
    data["train"] = {**TINY["train"], **train}
    return load_config(data=data)


def test_train_writes_a_complete_run_folder(tmp_path):
    result = train_from_config(_config(tmp_path))
    for item in ("config.yaml", "history.csv", "model.keras", "summary.json", "tensorboard", "checkpoints"):
        assert os.path.exists(os.path.join(result.run_dir, item)), item
    history = read_history(os.path.join(result.run_dir, "history.csv"))
    assert [int(r["epoch"]) for r in history] == [1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history[0])
    with open(os.path.join(result.run_dir, "config.yaml")) as handle:
        assert yaml.safe_load(handle)["train"]["epochs"] == 2


def test_same_seed_gives_identical_weights(tmp_path):
    a = train_from_config(_config(tmp_path, "a")).model.get_weights()
    b = train_from_config(_config(tmp_path, "b")).model.get_weights()
    for wa, wb in zip(a, b):
        np.testing.assert_array_equal(wa, wb)


def test_resume_continues_from_last_completed_epoch(tmp_path):
    config = _config(tmp_path, epochs=3)
    first = train_from_config(config, stop_after_epochs=1)
    assert not first.completed and len(first.history) == 1
    second = train_from_config(config)
    assert second.completed and second.resumed_from_epoch == 1
    assert [int(r["epoch"]) for r in second.history] == [1, 2, 3]
    assert second.history[0] == first.history[0]  # the finished epoch is kept, not redone


def test_changed_config_refuses_to_mix_runs(tmp_path):
    train_from_config(_config(tmp_path), stop_after_epochs=1)
    with pytest.raises(ValueError, match="train.learning_rate changed"):
        train_from_config(_config(tmp_path, learning_rate=0.5))


def test_killed_process_resumes_without_losing_finished_epochs(tmp_path):
    config_path = tmp_path / "kill.yaml"
    data = {**TINY, "name": "kill", "output_dir": str(tmp_path)}
    data["train"] = {**TINY["train"], "epochs": 4, "steps_per_epoch": 60}
    config_path.write_text(yaml.safe_dump(data))
    command = [sys.executable, "-m", "tfadv.cli.main", "train", str(config_path)]
    run_dir = tmp_path / "kill"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and not (run_dir / "checkpoints" / "ckpt-1.index").exists():
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = read_history(run_dir / "history.csv")
    assert 1 <= len(done_before) < 4 and not (run_dir / "model.keras").exists()
    assert subprocess.run(command, capture_output=True).returncode == 0
    after = read_history(run_dir / "history.csv")
    assert [int(r["epoch"]) for r in after] == [1, 2, 3, 4]
    assert after[: len(done_before)] == done_before
    assert (run_dir / "model.keras").exists()


def test_cli_errors_exit_2_with_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {epochs: many}\n")
    assert main(["train", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "train.epochs" in err and "'many'" in err
    overrides = ["--set", "train.epochs=1", "--set", "model.name=resnet7", "--set", f"output_dir={tmp_path}"]
    assert main(["train", str(bad), *overrides]) == 2
    assert "resnet7" in capsys.readouterr().err
    assert not (tmp_path / "experiment").exists()


METHOD_CASES = {
    "adversarial": ({"name": "tiny"}, {"kind": "adversarial", "adversarial_fraction": 0.5,
                                       "attack": {"name": "pgd", "eps": "8/255", "steps": 2}}),
    "advprop": ({"name": "tiny", "norm": "dual_bn"}, {"kind": "advprop",
                                                      "attack": {"name": "fgsm", "eps": "4/255"}}),
    "robmask": ({"name": "tiny", "norm": "robmask"}, {"kind": "robmask", "eps_max": "8/255", "pgd_steps": 2,
                                                      "attack": {"name": "pgd", "eps": "8/255"}}),
}


@pytest.mark.parametrize("kind", sorted(METHOD_CASES))
def test_cli_trains_and_resumes_every_method(kind, tmp_path):
    import keras

    model, method = METHOD_CASES[kind]
    data = {**TINY, "name": kind, "output_dir": str(tmp_path), "model": model, "method": method}
    data["train"] = {**TINY["train"], "epochs": 2}
    config_path = tmp_path / f"{kind}.yaml"
    config_path.write_text(yaml.safe_dump(data))
    first = train_from_config(load_config(config_path), stop_after_epochs=1)
    assert not first.completed
    assert main(["train", str(config_path)]) == 0  # resumes at epoch 2
    history = read_history(tmp_path / kind / "history.csv")
    assert [int(r["epoch"]) for r in history] == [1, 2]
    assert history[0] == first.history[0]
    for key in ("accuracy", "robust_accuracy", "val_accuracy", "val_robust_accuracy"):
        assert 0.0 <= float(history[-1][key]) <= 1.0, key
    loaded = keras.models.load_model(tmp_path / kind / "model.keras")
    from tfadv.models import is_conditioned

    assert is_conditioned(loaded) == (kind != "adversarial")


def test_offline_finetuning_from_the_cli_stores_the_set_and_covers_2n_per_epoch(tmp_path):
    import h5py

    clean = train_from_config(_config(tmp_path, "clean", epochs=1))
    data = {**TINY, "name": "ft", "output_dir": str(tmp_path),
            "model": {"name": "tiny", "init_from": clean.run_dir},
            "method": {"kind": "finetune", "attack": {"name": "fgsm", "eps": "8/255"}}}
    data["train"] = {**TINY["train"], "epochs": 1}
    path = tmp_path / "ft.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["train", str(path)]) == 0
    with h5py.File(tmp_path / "ft" / "adversarial_examples.h5") as stored:
        images = [stored[k] for k in stored if getattr(stored[k], "shape", ())[:1] == (256,)]
        assert images, "one stored adversarial example per training image"
    assert list((tmp_path / "ft" / "tensorboard").rglob("*"))
    # 256 clean + 256 adversarial images at batch 32: 16 optimizer steps in the epoch.
    import tensorflow as tf

    checkpoint = tf.train.latest_checkpoint(str(tmp_path / "ft" / "checkpoints"))
    names = [n for n, _ in tf.train.list_variables(checkpoint) if "iteration" in n]
    assert names and int(tf.train.load_variable(checkpoint, names[0])) == 16
    from tfadv.training import load_model

    assert load_model(tmp_path / "ft").count_params() == clean.model.count_params()


def test_precision_policy_is_restored_even_when_training_fails(tmp_path, monkeypatch):
    import keras

    import tfadv.training.runner as runner

    def broken(*args, **kwargs):
        raise RuntimeError("data went away")

    monkeypatch.setattr(runner, "assemble", broken)
    config = _config(tmp_path, "mp", mixed_precision="mixed_bfloat16")
    with pytest.raises(RuntimeError, match="data went away"):
        train_from_config(config)
    assert keras.mixed_precision.global_policy().name == "float32"
    monkeypatch.undo()
    result = train_from_config(_config(tmp_path, "mp2", mixed_precision="mixed_bfloat16", epochs=1))
    assert result.model.layers[2].compute_dtype == "bfloat16"  # the run itself used the policy
    assert keras.mixed_precision.global_policy().name == "float32"
