"""tfadv.evaluation: tables against hand-computed values, resume, round trip, bad input."""
import json
import os

import keras
import numpy as np
import pytest

from tfadv import evaluation
from tfadv.attacks import _compile
from tfadv.evaluation import AttackSpec, evaluate, format_report, load_model, load_results, pgd_sweep, preset
from tfadv.evaluation.results import decode_mask
from tfadv.evaluation.specs import SWEEP_EPS

# The attacks run as plain graphs here: an XLA compile per configuration costs
# seconds on two shared cores, and XLA itself is covered by the attack tests.
FAST = dict(progress=False, jit_compile=False)
SIZE = 12  # images are SIZE × SIZE × 1

# ---------------------------------------------------------------------------
# A linear model whose attacks and tables can be computed by hand.
#
# logits = [0, mean(x) − 0.5]: class 1 iff the mean pixel exceeds 0.5. On a
# constant image of value v, the CE gradient has the same sign at every pixel
# (+ for label 0, − for label 1), so FGSM and a PGD that reaches the corner
# give the constant image v ± ε: an example flips exactly when it lies within
# ε of 0.5 on its own side. For two constant images v and w, 1 − SSIM =
# (v − w)² / (v² + w² + C1) (no contrast or structure, C1 = 0.01²).
VALUES = np.array([0.10, 0.30, 0.45, 0.48, 0.52, 0.56, 0.70, 0.90])
LABELS = np.array([0, 1, 0, 0, 1, 1, 1, 1])  # v = 0.30 is labelled 1: wrong from the start
C1 = 0.01**2


def _linear_model():
    model = keras.Sequential([keras.Input((SIZE, SIZE, 1)), keras.layers.Flatten(), keras.layers.Dense(2)])
    weights = np.zeros((SIZE * SIZE, 2), "float32")
    weights[:, 1] = 1.0 / (SIZE * SIZE)
    model.layers[-1].set_weights([weights, np.array([0.0, -0.5], "float32")])
    return model


def _constant_images(values):
    return np.broadcast_to(np.asarray(values, "float32")[:, None, None, None], (len(values), SIZE, SIZE, 1)).copy()


def _by_hand(eps):
    """Correctness, flips and 1 − SSIM under the attack that moves every image to its corner."""
    predicted = (VALUES > 0.5).astype(int)
    moved = VALUES + eps * np.where(LABELS == 0, 1.0, -1.0)
    adversarial = (moved > 0.5).astype(int)
    distance = (moved - VALUES) ** 2 / (VALUES**2 + moved**2 + C1)
    return adversarial == LABELS, adversarial != predicted, distance


@pytest.fixture
def linear_setup():
    return _linear_model(), _constant_images(VALUES), LABELS.astype("int64")


def test_tables_match_hand_computed_values(linear_setup, tmp_path):
    model, x, y = linear_setup
    fgsm, pgd = AttackSpec("fgsm", eps=8 / 255), AttackSpec("pgd", eps=1 / 255, steps=10)
    results = evaluate({"linear": model}, x, y, [fgsm, pgd], tmp_path, batch_size=3, **FAST)

    clean_correct = (VALUES > 0.5).astype(int) == LABELS
    fgsm_correct, fgsm_flipped, fgsm_distance = _by_hand(8 / 255)
    pgd_correct, _, _ = _by_hand(1 / 255)
    assert fgsm_flipped.sum() == 2 and pgd_correct.sum() == 7  # the design: 0.48 and 0.52 flip

    table = evaluation.accuracy_table(results)
    assert table.header == ["Model", "Clean", "FGSM ε=8/255", "PGD-10 ε=1/255", "Worst case"]
    expected = [clean_correct.mean(), fgsm_correct.mean(), pgd_correct.mean(),
                (clean_correct & fgsm_correct & pgd_correct).mean()]
    assert table.rows[0][0] == "linear"
    np.testing.assert_allclose(table.rows[0][1:], expected)
    assert "| linear | 87.50 | 62.50 | 87.50 | 62.50 |" in format_report(results)

    ssim = evaluation.ssim_table(results)
    flipped_mean, all_mean = ssim.rows[0][1], ssim.rows[0][2]
    # atol: SSIM's float32 moments E[x²] − μ² leave ~3e-8 of variance on flat
    # images, which shifts 1 − SSIM by ~6e-5 (the distances here are 2e-3 to 4e-2).
    np.testing.assert_allclose(flipped_mean, fgsm_distance[fgsm_flipped].mean(), atol=1e-4)
    np.testing.assert_allclose(all_mean, fgsm_distance.mean(), atol=1e-4)
    assert all_mean > 2 * flipped_mean
    assert ssim.rows[0][3] is None  # PGD at 1/255 flips nothing: no mean over flipped examples
    part = results["models"]["linear"]["parts"][fgsm.id]
    assert part["flipped"] == 2
    np.testing.assert_array_equal(decode_mask(part["correct"]), fgsm_correct)
    assert part["attack"] == {"name": "fgsm", "eps": 8 / 255}

    # The released code's compare_ssim convention: on constant images only C1 = (0.01 · 2)² differs.
    sk = evaluate({"linear": model}, x, y, [fgsm, pgd], tmp_path, batch_size=3,
                  ssim_convention="skimage_compare_ssim", **FAST)
    assert sk["plan"]["ssim_convention"] == "skimage_compare_ssim"
    assert load_results(tmp_path)["plan"]["ssim_convention"] == "skimage_compare_ssim"
    moved = VALUES + 8 / 255 * np.where(LABELS == 0, 1.0, -1.0)
    sk_distance = (moved - VALUES) ** 2 / (VALUES**2 + moved**2 + (0.01 * 2) ** 2)
    sk_table = evaluation.ssim_table(sk)
    np.testing.assert_allclose(sk_table.rows[0][1], sk_distance[fgsm_flipped].mean(), atol=1e-4)
    np.testing.assert_allclose(sk_table.rows[0][2], sk_distance.mean(), atol=1e-4)
    assert "(test, flipped)" in sk_table.header[1] and "(test, all)" in sk_table.header[2]


def test_sweep_matches_hand_computed_values_and_eps_zero_is_clean(linear_setup):
    model, x, y = linear_setup
    # Ten steps of ε/5 from anywhere in the ball reach the corner v ± ε.
    results = evaluate({"linear": model}, x, y, sweep=pgd_sweep(steps=10), batch_size=8, **FAST)
    table = evaluation.sweep_table(results)
    assert table.header == ["Model", "ε=0", "ε=2/255", "ε=4/255", "ε=6/255", "ε=8/255"]  # paper 2, Table 5
    expected = [_by_hand(eps)[0].mean() for eps in SWEEP_EPS]
    np.testing.assert_allclose(table.rows[0][1:], expected)
    assert expected[0] == 7 / 8 and expected[-1] == 5 / 8
    clean = results["models"]["linear"]["parts"]["clean"]
    assert table.rows[0][1] == clean["accuracy"]


@pytest.fixture(scope="module")
def trained_toy():
    """A small CNN trained on 3 classes of 12×12 images; evaluated on 32 of its training images."""
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    directions = rng.normal(size=(3, SIZE * SIZE))
    x = rng.uniform(0.0, 1.0, size=(160, SIZE, SIZE, 1)).astype("float32")
    y = np.argmax((x.reshape(len(x), -1) - 0.5) @ directions.T, axis=-1).astype("int64")
    model = keras.Sequential([
        keras.Input((SIZE, SIZE, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(3),
    ])
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=30, batch_size=80, verbose=0)
    return model, x[:32], y[:32]


def test_pgd_sweep_is_monotone_and_starts_at_clean_accuracy(trained_toy):
    model, x, y = trained_toy
    sweep = pgd_sweep(eps_values=[0, 2 / 255, 4 / 255, 8 / 255, 16 / 255], steps=10)
    results = evaluate({"toy": model}, x, y, sweep=sweep, batch_size=16, **FAST)
    record = results["models"]["toy"]
    accuracies = [record["parts"][spec.id]["accuracy"] for spec in sweep]
    clean = record["parts"]["clean"]
    assert accuracies[0] == clean["accuracy"] and accuracies[0] > 0.6
    assert record["parts"][sweep[0].id]["correct"] == clean["correct"]
    # Non-increasing within noise: at most one example of slack per step.
    assert all(later <= earlier + 1 / len(x) for earlier, later in zip(accuracies, accuracies[1:]))
    assert accuracies[-1] < accuracies[0]


def test_apgd_at_least_as_strong_as_pgd_in_the_tables(trained_toy):
    model, x, y = trained_toy
    attacks = [AttackSpec("pgd", eps=8 / 255, steps=20), AttackSpec("apgd-ce", eps=8 / 255, steps=20),
               AttackSpec("apgd-dlr", eps=8 / 255, steps=20)]
    results = evaluate({"toy": model}, x, y, attacks, batch_size=32, **FAST)
    row = evaluation.accuracy_table(results).rows[0]
    clean, pgd, apgd_ce, apgd_dlr, worst = row[1:]
    assert apgd_ce <= pgd and apgd_dlr <= pgd + 1 / len(x)
    assert worst <= min(pgd, apgd_ce, apgd_dlr) and pgd < clean


def test_eval_json_round_trips_to_identical_tables(linear_setup, tmp_path):
    model, x, y = linear_setup
    results = evaluate({"linear": model}, x, y, [AttackSpec("fgsm", eps=8 / 255)], tmp_path,
                       sweep=pgd_sweep([0, 8 / 255], steps=2), dataset="constants", **FAST)
    loaded = load_results(tmp_path)
    assert loaded == json.loads(json.dumps(results))
    assert format_report(loaded) == format_report(results)
    with open(tmp_path / "eval.md", encoding="utf-8") as handle:
        assert handle.read() == format_report(results)
    assert loaded["dataset"]["name"] == "constants" and loaded["environment"]["tensorflow"]
    for figure in loaded["figures"]:
        assert os.path.getsize(tmp_path / figure) > 0
    assert "accuracy_vs_eps.png" in loaded["figures"]
    assert any(figure.startswith("grid-linear-fgsm") for figure in loaded["figures"])


class _CountingRun:
    """Replaces AttackSpec.run to count the batches attacked per attack name."""

    def __init__(self, monkeypatch, fail_on=None):
        self.calls = {}
        original = AttackSpec.run
        counter = self

        def run(spec, *args, **kwargs):
            if spec.name == fail_on:
                raise RuntimeError("simulated failure")
            counter.calls[spec.name] = counter.calls.get(spec.name, 0) + 1
            return original(spec, *args, **kwargs)

        monkeypatch.setattr(AttackSpec, "run", run)


def test_rerun_skips_finished_parts_and_force_recomputes(linear_setup, tmp_path, monkeypatch):
    model, x, y = linear_setup
    attacks = [AttackSpec("fgsm", eps=8 / 255), AttackSpec("pgd", eps=2 / 255, steps=3)]
    counter = _CountingRun(monkeypatch)
    kwargs = dict(batch_size=4, plots=False, **FAST)
    first = evaluate({"linear": model}, x, y, attacks, tmp_path, **kwargs)
    assert counter.calls == {"fgsm": 2, "pgd": 2}  # 8 examples, batches of 4

    counter.calls.clear()
    again = evaluate({"linear": model}, x, y, attacks, tmp_path, **kwargs)
    assert counter.calls == {}
    assert format_report(again) == format_report(first)

    # Changed settings are new parts; unchanged ones stay skipped.
    counter.calls.clear()
    evaluate({"linear": model}, x, y, [attacks[0], AttackSpec("pgd", eps=2 / 255, steps=4)], tmp_path, **kwargs)
    assert counter.calls == {"pgd": 2}

    counter.calls.clear()
    evaluate({"linear": model}, x, y, attacks, tmp_path, force=True, **kwargs)
    assert counter.calls == {"fgsm": 2, "pgd": 2}

    # Other weights or other data: nothing is reused.
    other = _linear_model()
    other.layers[-1].set_weights([w * 2 for w in other.layers[-1].get_weights()])
    counter.calls.clear()
    evaluate({"linear": other}, x, y, attacks, tmp_path, **kwargs)
    assert counter.calls == {"fgsm": 2, "pgd": 2}
    counter.calls.clear()
    evaluate({"linear": other}, x[:6], y[:6], attacks, tmp_path, **kwargs)
    assert counter.calls == {"fgsm": 2, "pgd": 2}


def test_failure_halfway_keeps_finished_parts(linear_setup, tmp_path, monkeypatch):
    model, x, y = linear_setup
    attacks = [AttackSpec("fgsm", eps=8 / 255), AttackSpec("pgd", eps=2 / 255, steps=3)]
    _CountingRun(monkeypatch, fail_on="pgd")
    with pytest.raises(RuntimeError, match="simulated"):
        evaluate({"linear": model}, x, y, attacks, tmp_path, plots=False, **FAST)
    stored = load_results(tmp_path)["models"]["linear"]["parts"]
    assert set(stored) == {"clean", attacks[0].id}

    monkeypatch.undo()
    counter = _CountingRun(monkeypatch)
    evaluate({"linear": model}, x, y, attacks, tmp_path, plots=False, **FAST)
    assert counter.calls == {"pgd": 1}


def test_partial_last_batch_is_padded_so_each_attack_traces_once(linear_setup):
    model, x, y = linear_setup
    before = _compile.TRACE_COUNTS["fgsm"]
    results = evaluate({"linear": model}, x[:7], y[:7], [AttackSpec("fgsm", eps=8 / 255)], batch_size=3, **FAST)
    assert _compile.TRACE_COUNTS["fgsm"] == before + 1
    assert results["models"]["linear"]["parts"][AttackSpec("fgsm", eps=8 / 255).id]["num_examples"] == 7


def _conditioned_linear_model():
    """logits = [0, mean(x) − 0.5 + 0.3 p]: a larger p moves the boundary down by 0.3 p."""
    images = keras.Input((SIZE, SIZE, 1), name="images")
    condition = keras.Input((1,), name="condition")
    features = keras.layers.Concatenate()([keras.layers.Flatten()(images), condition])
    dense = keras.layers.Dense(2)
    model = keras.Model({"images": images, "condition": condition}, dense(features))
    weights = np.zeros((SIZE * SIZE + 1, 2), "float32")
    weights[:-1, 1] = 1.0 / (SIZE * SIZE)
    weights[-1, 1] = 0.3
    dense.set_weights([weights, np.array([0.0, -0.5], "float32")])
    return model


def test_tradeoff_curve_of_a_conditioned_model(linear_setup, tmp_path):
    _, x, y = linear_setup
    grid = [0.0, 0.5, 1.0]
    fgsm = AttackSpec("fgsm", eps=8 / 255)
    results = evaluate({"cond": _conditioned_linear_model(), "plain": _linear_model()}, x, y, [fgsm], tmp_path,
                       p_grid=grid, batch_size=8, **FAST)
    (table,) = evaluation.tradeoff_tables(results)
    for row, p in zip(table.rows, grid):
        threshold = 0.5 - 0.3 * p
        clean = np.mean((VALUES > threshold).astype(int) == LABELS)
        moved = VALUES + 8 / 255 * np.where(LABELS == 0, 1.0, -1.0)
        robust = np.mean((moved > threshold).astype(int) == LABELS)
        assert row[0] == f"{p:g}"
        np.testing.assert_allclose(row[1:], [clean, robust])
    accuracy = evaluation.accuracy_table(results)
    assert [row[0] for row in accuracy.rows] == ["cond (p=0)", "plain"]
    assert "tradeoff.png" in results["figures"]


def test_load_model_reads_run_folders_keras_files_and_saved_models(linear_setup, tmp_path):
    model, x, y = linear_setup
    run = tmp_path / "runs" / "linear_run"
    run.mkdir(parents=True)
    model.save(run / "model.keras")
    model.export(str(tmp_path / "exported"), verbose=False)
    fgsm = AttackSpec("fgsm", eps=8 / 255)
    results = evaluate([run, run / "model.keras"], x, y, [fgsm], batch_size=8, **FAST)
    assert list(results["models"]) == ["linear_run"]  # both name the same run
    saved = load_model(tmp_path / "exported")
    assert isinstance(saved, evaluation.SavedModelFunction) and not saved.conditioned
    np.testing.assert_allclose(saved(x).numpy(), model(x).numpy(), atol=1e-6)
    # Gradients reach the images through the restored signature: FGSM gives the same images.
    np.testing.assert_allclose(fgsm.run(saved, x, y, jit_compile=False), fgsm.run(model, x, y, jit_compile=False))
    from_saved = evaluate({"saved": saved}, x, y, [fgsm], batch_size=8, **FAST)
    assert evaluation.accuracy_table(from_saved).rows[0][1:] == evaluation.accuracy_table(results).rows[0][1:]


def test_presets():
    table1 = preset("paper1_table1")["attacks"]
    assert [spec.label for spec in table1] == ["FGSM ε=8/255", "PGD-10 ε=1/255", "stAdv τ=0.05 ‖f‖∞≤0.004687 (grid units)"]
    # "stAdv with radius 0.3/64", read in grid_sample's coordinates (tfadv.evaluation.specs).
    assert table1[2].flow_bound == pytest.approx(0.3 / 64) and table1[2].flow_unit == "grid"
    assert preset("paper1_table2") == {**preset("paper1_table1"), "ssim_convention": "skimage_compare_ssim"}
    sweep = preset("paper2_sweep")["sweep"]
    assert [spec.eps for spec in sweep] == list(SWEEP_EPS)
    for spec in sweep:
        assert spec.steps == 100 and spec.random_start and spec.step_size == pytest.approx(spec.eps / 5)
    assert [spec.name for spec in preset("strong")["attacks"]] == ["apgd-ce", "apgd-dlr"]
    with pytest.raises(ValueError, match="preset"):
        preset("paper3")


def test_bad_inputs_raise_value_error(linear_setup, tmp_path):
    model, x, y = linear_setup
    with pytest.raises(ValueError, match="path="):
        load_model(tmp_path / "missing")
    (tmp_path / "broken.keras").write_text("not a model")
    with pytest.raises(ValueError, match="broken.keras"):
        load_model(tmp_path / "broken.keras")
    with pytest.raises(ValueError, match="path="):
        evaluate([tmp_path], x, y, **FAST)
    with pytest.raises(ValueError, match="name='nope'"):
        evaluate({"m": model}, x, y, [{"name": "nope"}], **FAST)
    with pytest.raises(ValueError, match="x must be in"):
        evaluate({"m": model}, x * 2, y, **FAST)
    with pytest.raises(ValueError, match="y must hold"):
        evaluate({"m": model}, x, y[:3], **FAST)
    with pytest.raises(ValueError, match="p_grid"):
        evaluate({"m": model}, x, y, p_grid=[0.5, 2.0], **FAST)
    with pytest.raises(ValueError, match="batch_size"):
        evaluate({"m": model}, x, y, batch_size=0, **FAST)
    with pytest.raises(ValueError, match="path="):
        load_results(tmp_path / "nothing.json")
