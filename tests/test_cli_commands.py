"""The CLI subcommands end to end on a tiny trained run (tests of the library are elsewhere)."""
import json
import os

import h5py
import numpy as np
import pytest

from tfadv.cli.main import _join_negative_values, main
from tfadv.config import load_config
from tfadv.training import train_from_config


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    config = load_config(data={
        "name": "tiny", "output_dir": str(out), "model": {"name": "tiny"},
        "data": {"limit_train": 128, "limit_test": 64, "batch_size": 32, "augment": False},
        "train": {"epochs": 1, "verbose": 0},
    })
    return train_from_config(config).run_dir


def test_negative_grid_values_are_joined():
    assert _join_negative_values(["landscape", "m", "--grid", "-1:1:5", "--dim", "2"]) == [
        "landscape", "m", "--grid=-1:1:5", "--dim", "2"]


def test_landscape_command_writes_surface_plots_and_sharpness(tiny_run, tmp_path):
    out = tmp_path / "ls"
    argv = ["landscape", tiny_run, "--grid", "-1:1:3", "--examples", "32", "--out", str(out),
            "--hutchinson-samples", "2"]
    assert main(argv) == 0
    folder = out / "tiny"
    with h5py.File(folder / "surface.h5") as surface:
        loss = surface["train_loss"][...]
        assert loss.shape == (3, 3) and np.isfinite(loss).all()
    assert (folder / "loss_2dcontour.png").exists() and (folder / "loss_3dsurface.png").exists()
    assert json.loads((folder / "sharpness.json").read_text())
    assert main(argv) == 0  # a second run resumes (nothing left to do) and succeeds
    assert main(["landscape", tiny_run, "--grid", "1:x:3", "--out", str(out)]) == 2


def test_tune_command_runs_a_search_and_reports_the_best(tmp_path, capsys):
    config = os.path.join(os.path.dirname(__file__), "..", "configs", "tune", "digits_tiny_robmask.yaml")
    argv = ["tune", config, "--set", f"output_dir={tmp_path}", "--set", "tune.max_trials=1",
            "--set", "tune.epochs=1", "--set", "data.limit_train=64", "--set", "data.limit_test=32",
            "--set", "train.verbose=0"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "best eps_max:" in printed and "best.keras" in printed
    assert (tmp_path / "tune-digits-tiny-robmask" / "tuning" / "best.keras").exists()


def test_eval_command_tables_and_bad_input(tiny_run, tmp_path, capsys):
    from tfadv.attacks.spec import attack_settings_from_text

    assert attack_settings_from_text("pgd:eps=8/255,steps=20,random_start=false") == {
        "name": "pgd", "eps": 8 / 255, "steps": 20, "random_start": False}
    out = tmp_path / "ev"
    argv = ["eval", tiny_run, "--limit", "16", "--out", str(out), "--attack", "fgsm:eps=2/255",
            "--preset", "strong", "--eps-sweep", "0,2/255"]
    assert main(argv) == 0
    results = json.loads((out / "eval.json").read_text())
    assert (out / "eval.md").exists()
    printed = capsys.readouterr().out
    assert "APGD" in printed and "FGSM" in printed
    # The clean column equals an independent evaluation of the same images, and no attack
    # (all untargeted, crafted on the same model) reports more than clean accuracy.
    from tfadv.data import load_arrays
    from tfadv.models import load_model

    x, y = load_arrays("digits", "test")
    expected = float(np.mean(np.argmax(load_model(tiny_run)(x[:16]), axis=1) == y[:16]))
    parts = results["models"]["tiny"]["parts"]
    assert parts["clean"]["accuracy"] == pytest.approx(expected)
    assert len(parts) >= 6  # clean, fgsm, apgd-ce, apgd-dlr, and the two sweep points
    for part in parts.values():
        assert part["accuracy"] <= parts["clean"]["accuracy"] + 1e-9
    assert main(["eval", tiny_run, "--attack", "cw", "--out", str(out)]) == 2
    assert "cw" in capsys.readouterr().err
    assert main(["eval", tiny_run, "--attack", "pgd:eps=2", "--out", str(out)]) == 2
    assert main(["eval", str(tmp_path / "missing"), "--out", str(out)]) == 2


def test_export_command_writes_a_servable_model(tiny_run, tmp_path, capsys):
    import tensorflow as tf

    out = tmp_path / "exported"
    assert main(["export", tiny_run, "--out", str(out)]) == 0
    assert "serving_default" in capsys.readouterr().out
    loaded = tf.saved_model.load(str(out))
    assert set(loaded.signatures) == {"serving_default"}  # a plain BN model has one signature
    images = tf.zeros((2, 32, 32, 3))
    probabilities = loaded.signatures["serving_default"](images=images)["probabilities"].numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert main(["export", tiny_run, "--out", str(out)]) == 2  # exists: refuse without --overwrite
    assert "overwrite" in capsys.readouterr().err
    assert main(["export", tiny_run, "--out", str(out), "--masking", "clean"]) == 2


def test_bench_json_is_one_object_with_ratio_rows(capsys, monkeypatch):
    import tfadv.bench as bench

    fake = {"benchmark": "landscape", "ratio": 0.95, "target": 1.1, "point_seconds": 0.1,
            "forward_seconds": 0.105}
    monkeypatch.setattr(bench, "run_benchmark", lambda name, **settings: dict(fake))
    assert main(["bench", "landscape", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rows"][0]["ratio"] == pytest.approx(0.95) and report["rows"][0]["pass"]
    assert report["environment"]["tensorflow"]
    assert main(["bench", "nonsense"]) == 2


def test_bench_runs_report_the_median_and_the_spread(capsys, monkeypatch):
    import tfadv.bench as bench

    ratios = iter([1.2, 0.9, 1.0])
    monkeypatch.setattr(bench, "run_benchmark", lambda name, **settings: {
        "benchmark": "landscape", "ratio": next(ratios), "target": 1.1, "point_seconds": 0.1,
        "forward_seconds": 0.1})
    assert main(["bench", "landscape", "--runs", "3"]) == 0
    out = capsys.readouterr().out
    row = [line for line in out.splitlines() if line.startswith("| landscape grid point")][0]
    assert "| 1.000 |" in row and "PASS" in row and "3 runs: 0.900–1.200" in row
    assert "median of 3 runs" in out and "load average" in out and "commit" in out
    assert main(["bench", "landscape", "--runs", "0"]) == 2


def test_landscape_command_pca_directions_from_checkpoints(tiny_run, tmp_path):
    import keras

    model = keras.models.load_model(os.path.join(tiny_run, "model.keras"))
    checkpoints = []
    for i in range(3):  # a made-up trajectory ending at the model
        for variable in model.trainable_variables:
            variable.assign(variable * (1.0 + 0.1 * (3 - i)))
        path = tmp_path / f"step{i}.weights.h5"
        model.save_weights(path)
        checkpoints.append(str(path))
    out = tmp_path / "pca"
    assert main(["landscape", tiny_run, "--grid", "-1:1:3", "--examples", "16", "--out", str(out),
                 "--hutchinson-samples", "0", "--no-plots", "--pca-checkpoints", *checkpoints]) == 0
    with h5py.File(out / "tiny" / "surface.h5") as surface:
        assert np.isfinite(surface["train_loss"][...]).all()


def test_quickstart_command_runs_the_quickstart_profile_and_refuses_missing_data(tmp_path, capsys, monkeypatch):
    import tfadv.experiments as experiments

    ran = []
    monkeypatch.setattr(experiments, "run_experiment", lambda experiment: ran.append(experiment))
    argv = ["quickstart", "--out", str(tmp_path), "--export-dir", str(tmp_path / "export"), "--epochs", "2",
            "--eval-limit", "40"]
    assert main(argv) == 0
    (experiment,) = ran
    assert experiment.report_path == os.path.join(str(tmp_path), "quickstart", "report.md")
    assert experiment.runs["clean"].train.epochs == 2 and experiment.eval_limit == 40
    assert experiment.export.out_dir == os.path.join(str(tmp_path / "export"), "quickstart-robmask")
    monkeypatch.undo()
    assert main(["quickstart", "--data", str(tmp_path / "missing.npz"), "--out", str(tmp_path)]) == 2
    assert "missing.npz" in capsys.readouterr().err
