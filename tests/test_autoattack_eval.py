"""AutoAttack in AttackSpec, the evaluation presets, the Table 6 layout and `tfadv eval`."""
import json

import keras
import numpy as np
import pytest

from tfadv import evaluation
from tfadv.attacks import AttackSpec, apgd_targeted, autoattack, fab_targeted, square
from tfadv.cli.main import main
from tfadv.evaluation import evaluate, pgd_sweep, preset
from tfadv.evaluation.tables import robustness_table

FAST = dict(progress=False, jit_compile=False)


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    from tfadv.data import load_arrays
    from tfadv.models import build

    keras.utils.set_random_seed(0)
    x, y = load_arrays("digits", "train")
    model = build("tiny", num_classes=10, input_shape=x.shape[1:])
    model.compile(keras.optimizers.Adam(0.01),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:256], y[:256], epochs=3, batch_size=32, verbose=0)
    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    model.save(path)
    x_test, y_test = load_arrays("digits", "test")
    return model, str(path), x_test[:16], y_test[:16]


def _accuracy(model, x, y):
    return float(np.mean(np.argmax(model(x, training=False), axis=-1) == y))


def test_specs_defaults_labels_and_runs_match_the_functions(digits_model):
    model, _, x, y = digits_model
    aa = AttackSpec.create({"name": "autoattack", "eps": "8/255"})
    assert (aa.steps, aa.queries, aa.seed, aa.restarts) == (100, 5000, 0, None)
    assert aa.label == "AutoAttack ε=8/255"
    assert AttackSpec("square", eps=2 / 255).label == "Square-5000 ε=2/255"
    assert AttackSpec("apgd-t", eps=2 / 255).label == "APGD-T-100 ε=2/255"
    assert AttackSpec("fab-t", eps=2 / 255, steps=10).label == "FAB-T-10 ε=2/255"
    assert AttackSpec("autoattack", eps=2 / 255, steps=5, queries=9).label == \
        "AutoAttack (5 steps, 9 queries) ε=2/255"
    with pytest.raises(ValueError, match="queries"):
        AttackSpec("square", eps=0.1, queries=0)
    eps = 4 / 255
    # batch_index 1 with seed 0: the functions' seed is 0 · STRIDE + 1 = 1.
    pairs = [
        (AttackSpec("apgd-t", eps=eps, steps=3), lambda: apgd_targeted(model, x, y, eps, steps=3, seed=1)),
        (AttackSpec("fab-t", eps=eps, steps=3), lambda: fab_targeted(model, x, y, eps, steps=3, seed=1)),
        (AttackSpec("square", eps=eps, queries=8), lambda: square(model, x, y, eps, queries=8, seed=1)),
        (AttackSpec("autoattack", eps=eps, steps=3, queries=8),
         lambda: autoattack(model, x, y, eps, steps=3, queries=8, seed=1)),
    ]
    for spec, direct in pairs:
        np.testing.assert_array_equal(spec.run(model, x, y, batch_index=1).numpy(), direct().numpy())
        assert spec.run(model, x, y, eps=0.0) is x


def test_presets():
    (aa,) = preset("autoattack")["attacks"]
    assert aa.name == "autoattack" and aa.eps == pytest.approx(8 / 255) and aa.steps == 100
    table6 = preset("paper2_table6")
    expected = [k / 255 for k in (0, 2, 4, 6, 8)]
    assert [a.eps for a in table6["attacks"]] == pytest.approx(expected)
    assert {a.name for a in table6["attacks"]} == {"autoattack"}
    assert [s.eps for s in table6["sweep"]] == pytest.approx(expected)
    assert all(s.steps == 100 and s.step_size == pytest.approx(s.eps / 5) for s in table6["sweep"])


def test_table6_layout_over_eps(digits_model):
    model, _, x, y = digits_model
    grid = [0.0, 2 / 255, 8 / 255]
    attacks = [AttackSpec("autoattack", eps=eps, steps=3, queries=8) for eps in grid]
    results = evaluate({"tiny": model}, x, y, attacks, sweep=pgd_sweep(grid, steps=3), batch_size=16, **FAST)
    # Two tables, as the paper's Tables 5 (PGD over ε) and 6 (AutoAttack over ε).
    table = robustness_table(results)
    assert table.header == ["Model", "ε=0", "ε=2/255", "ε=8/255"]
    (aa_row,) = table.rows
    pgd = evaluation.sweep_table(results)
    assert pgd.header == ["Model", "ε=0", "ε=2/255", "ε=8/255"] and "Table 5 layout" in pgd.title
    (pgd_row,) = pgd.rows
    clean = _accuracy(model, x, y)
    assert pgd_row[1] == pytest.approx(clean) and aa_row[1] == pytest.approx(clean)
    for eps, value in zip(grid[1:], aa_row[2:]):  # an independent run of the attack, same seed
        x_adv = autoattack(model, x, y, eps, steps=3, queries=8, seed=0, jit_compile=False)
        assert value == pytest.approx(_accuracy(model, x_adv, y))
    report = evaluation.format_report(results)
    assert "under AutoAttack over ε — paper 2, Table 6 layout" in report and "Table 5 layout" in report


def test_eval_command_reports_autoattack_accuracy(digits_model, tmp_path):
    model, path, x, y = digits_model
    out = tmp_path / "ev"
    argv = ["eval", path, "--limit", "16", "--out", str(out), "--data", "digits",
            "--attack", "autoattack:eps=2/255,steps=3,queries=8"]
    assert main(argv) == 0
    results = json.loads((out / "eval.json").read_text())
    (part,) = [p for p in results["models"]["tiny"]["parts"].values() if p["attack_id"]]
    assert part["attack"]["name"] == "autoattack" and part["label"].startswith("AutoAttack")
    x_adv = autoattack(model, x, y, 2 / 255, steps=3, queries=8, seed=0)
    assert part["accuracy"] == pytest.approx(_accuracy(model, x_adv, y))
