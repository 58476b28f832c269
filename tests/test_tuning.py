"""tfadv.tuning: the ε_max search space, the objectives, the search, its report and resume."""
import glob
import json
import os

import keras
import keras_tuner
import numpy as np
import pytest

from tfadv import attacks
from tfadv.config import ConfigError, load_config
from tfadv.layers import ConditionedBatchNormalization
from tfadv.training import load_model
from tfadv.training.runner import load_split_arrays
from tfadv.tuning import EpsMaxHyperModel, TradeOffMetric, make_objective, make_tuner, run_tuning, tradeoff

CLEAN_WEIGHT = 0.3
CONFIGS = os.path.join(os.path.dirname(__file__), os.pardir, "configs", "tune")


def _config(tmp_path, name="search", method=None, model=None, train=None, **tune):
    return load_config(data={
        "name": name,
        "output_dir": str(tmp_path),
        "data": {"limit_train": 128, "limit_test": 64, "batch_size": 16, "augment": False},
        "model": {"name": "tiny", **(model or {})},
        "train": {"epochs": 1, "verbose": 0, "optimizer": "adam", "learning_rate": 0.01,
                  "schedule": "constant", "weight_decay": 0.0, **(train or {})},
        "method": method or {"kind": "adversarial", "attack": {"name": "fgsm"}},
        "tune": {"max_trials": 2, "epochs": 1, "objective": "weighted", "clean_weight": CLEAN_WEIGHT,
                 "eps_max_min": 2, "eps_max_max": 16, "eps_max_step": 2, **tune},
    })


def _arrays(n=32):
    rng = np.random.default_rng(0)
    return rng.uniform(0, 1, (n, 32, 32, 3)).astype("float32"), rng.integers(0, 10, n).astype("int64")


def _hp(**values):
    hp = keras_tuner.HyperParameters()
    hp.values.update(values)
    return hp


# ------------------------------------------------------------------ objectives


def test_tradeoff_metric_reaches_later_callbacks_and_history():
    seen = []

    class Probe(keras.callbacks.Callback):  # stands for the tuner's callbacks, appended after ours
        def on_epoch_end(self, epoch, logs=None):
            seen.append(logs["val_tradeoff"])

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    # add_history=True: Keras appends its History as fit does, after the given callbacks.
    callbacks = keras.callbacks.CallbackList([TradeOffMetric(CLEAN_WEIGHT), Probe()], add_history=True,
                                             model=model)
    callbacks.on_train_begin()
    for epoch, (clean, robust) in enumerate([(0.9, 0.2), (0.6, 0.5)]):
        callbacks.on_epoch_end(epoch, {"val_accuracy": clean, "val_robust_accuracy": robust})
    expected = [0.3 * 0.9 + 0.7 * 0.2, 0.3 * 0.6 + 0.7 * 0.5]
    np.testing.assert_allclose(seen, expected)
    (history,) = [c for c in callbacks.callbacks if isinstance(c, keras.callbacks.History)]
    np.testing.assert_allclose(history.history["val_tradeoff"], expected)
    assert tradeoff(1.0, 0.0, 0.25) == 0.25


def test_objective_directions_and_errors():
    for name, metric in [("val_accuracy", "val_accuracy"), ("val_robust_accuracy", "val_robust_accuracy"),
                         ("weighted", "val_tradeoff")]:
        assert make_objective(name) == keras_tuner.Objective(metric, direction="max")
    with pytest.raises(ValueError, match="objective=.val_loss."):
        make_objective("val_loss")
    with pytest.raises(ValueError, match="clean_weight=1.5"):
        TradeOffMetric(1.5)
    with pytest.raises(ValueError, match="val_robust_accuracy"):
        TradeOffMetric(0.5).on_epoch_end(0, {"val_accuracy": 1.0})


# ------------------------------------------------------------------ search space


def test_eps_max_in_units_of_1_over_255_reaches_each_method(tmp_path):
    adversarial = EpsMaxHyperModel(_config(tmp_path), train_arrays=_arrays())
    model = adversarial.build(_hp(eps_max=10.0))
    assert model.attack.eps == pytest.approx(10 / 255)
    assert model.eval_attack.eps == pytest.approx(8 / 255)  # robustness judged at one radius for all trials

    pgd = EpsMaxHyperModel(_config(tmp_path, method={"kind": "adversarial", "attack": {"name": "pgd", "steps": 2}}),
                           train_arrays=_arrays()).build(_hp(eps_max=12.0))
    assert pgd.attack.step_size == pytest.approx(12 / 255 / 4)  # unset step: ε / 4 at each radius
    assert pgd.eval_attack.step_size == pytest.approx(8 / 255 / 4)

    config = _config(tmp_path, method={"kind": "robmask", "pgd_steps": 2}, model={"norm": "robmask"},
                     tune_k=True, k_choices=[3], tune_learning_rate=True)
    robmask = EpsMaxHyperModel(config, train_arrays=_arrays())
    model = robmask.build(_hp(eps_max=6.0, learning_rate=0.02, k=3))
    assert model.eps_max == pytest.approx(6 / 255)
    assert model.eval_attack.eps == pytest.approx(8 / 255)
    assert model.eval_attack.step_size == pytest.approx(0.2 * 8 / 255) and model.eval_attack.steps == 2
    assert float(model.optimizer.learning_rate) == pytest.approx(0.02)
    norms = [l for l in model.inner.layers if isinstance(l, ConditionedBatchNormalization)]
    assert norms and all(layer.k == 3 for layer in norms)


def test_search_space_is_declared_with_its_bounds(tmp_path):
    config = _config(tmp_path, method={"kind": "robmask", "pgd_steps": 2}, model={"norm": "robmask"},
                     tune_k=True, k_choices=[2, 4], tune_learning_rate=True)
    hp = keras_tuner.HyperParameters()
    trial = EpsMaxHyperModel(config, train_arrays=_arrays()).trial_config(hp)
    space = {h.name: h for h in hp.space}
    eps, rate, k = space["eps_max"], space["learning_rate"], space["k"]
    assert (eps.min_value, eps.max_value, eps.step) == (2, 16, 2)
    assert rate.sampling == "log" and (rate.min_value, rate.max_value) == (1e-3, 0.3)
    assert list(k.values) == [2, 4]
    assert trial.train.epochs == config.tune.epochs
    assert trial.method.eps_max == pytest.approx(2 / 255)  # the default is the lower bound


@pytest.mark.parametrize("change, match", [
    ({"method": {"kind": "standard"}}, "method.kind='standard'"),
    ({"method": {"kind": "bn_finetune"}}, "method.kind='bn_finetune'"),
    ({"method": {"kind": "adversarial", "attack": {"name": "stadv"}}}, "method.attack.name='stadv'"),
    ({"tune_k": True}, "model.norm='bn'"),
    ({"eps_max_min": 20}, "eps_max_min=20"),
])
def test_bad_search_spaces_are_refused(tmp_path, change, match):
    with pytest.raises(ValueError, match=match):
        EpsMaxHyperModel(_config(tmp_path, **change), train_arrays=_arrays())


def test_mixed_precision_policy_survives_the_session_reset(tmp_path):
    hypermodel = EpsMaxHyperModel(_config(tmp_path, train={"mixed_precision": "mixed_bfloat16"}),
                                  train_arrays=_arrays())
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    keras.backend.clear_session()  # what the tuner does before every build
    assert keras.mixed_precision.global_policy().name == "float32"
    model = hypermodel.build(_hp(eps_max=8.0))
    assert keras.mixed_precision.global_policy().name == "float32"  # the build's policy is scoped to it
    convolutions = [l for l in model.inner.layers if isinstance(l, keras.layers.Conv2D)]
    assert convolutions and all(l.dtype_policy.name == "mixed_bfloat16" for l in convolutions)
    assert all(w.dtype == "float32" for l in convolutions for w in l.weights)  # float32 master weights


@pytest.mark.parametrize("kind, oracle", [("bayesian", "BayesianOptimizationOracle"),
                                          ("hyperband", "HyperbandOracle")])
def test_make_tuner_builds_the_named_tuner(tmp_path, kind, oracle):
    config = _config(tmp_path, tuner=kind, epochs=3)
    tuner = make_tuner(config, EpsMaxHyperModel(config, train_arrays=_arrays()), str(tmp_path))
    assert type(tuner.oracle).__name__ == oracle
    assert tuner.oracle.objective == keras_tuner.Objective("val_tradeoff", "max")
    assert tuner.project_dir == os.path.join(str(tmp_path), "trials")


# ------------------------------------------------------------------ the search


def test_two_trial_random_search_reports_both_trials_and_saves_the_best(tmp_path):
    config = _config(tmp_path)
    result = run_tuning(config, progress=False)
    rows = result["rows"]

    assert [r["trial"] for r in rows] == ["0", "1"] and all(r["status"] == "COMPLETED" for r in rows)
    assert rows[0]["eps_max_255"] != rows[1]["eps_max_255"]
    for row in rows:
        assert row["eps_max_255"] in np.arange(2, 17, 2)
        assert row["eps_max"] == pytest.approx(row["eps_max_255"] / 255)
        assert row["objective"] == pytest.approx(CLEAN_WEIGHT * row["clean"] + (1 - CLEAN_WEIGHT) * row["robust"])
    best = max(rows, key=lambda r: r["objective"])
    assert result["best_trial"] == best["trial"]
    assert result["best_eps_max"] == pytest.approx(best["eps_max_255"] / 255)

    with open(result["summary_json"]) as handle:
        summary = json.load(handle)
    assert [r["trial"] for r in summary["trials"]] == ["0", "1"]
    assert summary["best"]["trial"] == best["trial"] and summary["objective"] == "val_tradeoff"
    assert summary["robust_eps"] == pytest.approx(8 / 255)
    assert summary["config"]["tune"]["clean_weight"] == CLEAN_WEIGHT and "tensorflow" in summary["environment"]
    with open(result["summary_md"]) as handle:
        table = [line for line in handle if line.startswith("| ")][1:]
    assert [line.split("|")[1].strip() for line in table] == [
        r["trial"] + (" ★" if r["trial"] == best["trial"] else "") for r in rows]
    with open(result["plot"], "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.exists(os.path.join(result["tuning_dir"], "config.yaml"))

    # best.keras is the best trial's model: it reproduces the recorded clean and FGSM accuracies.
    model = load_model(result["best_model"])
    x, y = load_split_arrays(config.data, "test")
    clean = np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y)
    x_adv = attacks.fgsm(model, x, y, config.method.attack.eps)
    robust = np.mean(np.argmax(model.predict(np.asarray(x_adv), verbose=0), axis=1) == y)
    assert clean == pytest.approx(best["clean"]) and robust == pytest.approx(best["robust"])


def test_interrupted_search_resumes_without_repeating_finished_trials(tmp_path, monkeypatch):
    fitted = []  # ε_max of every trial that trained
    interrupt_at = [2]
    original_fit = EpsMaxHyperModel.fit

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt  # Ctrl-C after an epoch, before the tuner records it

    def counting_fit(self, hp, model, *args, **kwargs):
        fitted.append(hp.values["eps_max"])
        if len(fitted) == interrupt_at[0]:
            kwargs["callbacks"] = [Interrupt(), *kwargs["callbacks"]]
        return original_fit(self, hp, model, *args, **kwargs)

    monkeypatch.setattr(EpsMaxHyperModel, "fit", counting_fit)
    with pytest.raises(KeyboardInterrupt):
        run_tuning(_config(tmp_path), progress=False)
    assert len(fitted) == 2
    assert keras.mixed_precision.global_policy().name == "float32"

    interrupt_at[0] = None
    first = run_tuning(_config(tmp_path), progress=False)
    assert fitted[2:] == [fitted[1]]  # only the interrupted trial ran again, at its ε_max
    assert [r["trial"] for r in first["rows"]] == ["0", "1"]
    assert [r["eps_max_255"] for r in first["rows"]] == fitted[:2]

    more = run_tuning(_config(tmp_path, max_trials=3, retrain_best=True), progress=False)
    assert len(fitted) == 4  # one new trial
    assert [r["trial"] for r in more["rows"]] == ["0", "1", "2"]
    assert more["rows"][:2] == first["rows"]
    retrained = os.path.join(more["tuning_dir"], f"retrain_trial_{more['best_trial']}", "model.keras")
    for a, b in zip(load_model(retrained).get_weights(), load_model(more["best_model"]).get_weights()):
        np.testing.assert_array_equal(a, b)

    with pytest.raises(ConfigError, match="tune.eps_max_max changed"):
        run_tuning(_config(tmp_path, max_trials=3, eps_max_max=20), progress=False)


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(CONFIGS, "*.yaml"))))
def test_shipped_tuning_configs_are_valid_search_spaces(path):
    config = load_config(path)
    hypermodel = EpsMaxHyperModel(config, train_arrays=_arrays())
    hp = keras_tuner.HyperParameters()
    trial = hypermodel.trial_config(hp)
    assert trial.train.epochs == config.tune.epochs and "eps_max" in hp.values
