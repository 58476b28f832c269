"""tfadv.analysis and `tfadv inspect` / `tfadv plot-history`: values against hand computations."""
import json

import keras
import numpy as np
import pytest

from tfadv import models
from tfadv.analysis import bn_anatomy, masks
from tfadv.analysis.history import plot_histories, read_history
from tfadv.cli.main import main


def _randomize_norms(model, seed):
    """Give every BN weight a distinct random value (fresh models have γ = 1, β = 0, μ = 0, σ² = 1)."""
    rng = np.random.default_rng(seed)
    for layer in bn_anatomy.norm_layers(model):
        for weight in layer.weights:
            shape = tuple(weight.shape)
            value = rng.uniform(0.5, 1.5, shape) if "variance" in weight.path or "gamma" in weight.path \
                else rng.normal(0, 0.3, shape)
            weight.assign(value.astype("float32"))


def test_bn_parameters_read_each_norm_kind_at_its_masking():
    plain = models.build("tiny", norm="bn")
    robmask = models.build("tiny", norm="robmask")
    dual = models.build("tiny", norm="dual_bn")
    for model, seed in ((plain, 0), (robmask, 1), (dual, 2)):
        _randomize_norms(model, seed)

    bn = bn_anatomy.norm_layers(plain)[0]
    values = bn_anatomy.bn_parameters(bn)
    np.testing.assert_allclose(values["gamma"], bn.gamma.numpy())
    np.testing.assert_allclose(values["variance"], bn.moving_variance.numpy())

    layer = bn_anatomy.norm_layers(robmask)[0]
    w, w_prime = layer.gamma_basis.numpy(), layer.beta_basis.numpy()
    values = bn_anatomy.bn_parameters(layer, p=0.25)
    np.testing.assert_allclose(values["gamma"], 0.75 * w[0] + 0.25 * w[1], rtol=1e-6)
    np.testing.assert_allclose(values["beta"], 0.75 * w_prime[0] + 0.25 * w_prime[1], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(values["mean"], layer.moving_mean.numpy())

    layer = bn_anatomy.norm_layers(dual)[0]
    aux = bn_anatomy.bn_parameters(layer, p="aux")
    main_branch = bn_anatomy.bn_parameters(layer, p="main")
    np.testing.assert_allclose(aux["gamma"], layer.aux_gamma.numpy())
    np.testing.assert_allclose(main_branch["mean"], layer.main_moving_mean.numpy())
    np.testing.assert_allclose(aux["variance"], layer.aux_moving_variance.numpy())


def test_masking_strength_rejects_bad_values():
    assert bn_anatomy.masking_strength("aux") == 1.0
    with pytest.raises(ValueError, match="1.5"):
        bn_anatomy.masking_strength(1.5)
    with pytest.raises(ValueError, match="'clean'"):
        bn_anatomy.masking_strength("clean")


def test_compare_bn_measures_the_relative_change_of_each_parameter():
    model_a = models.build("tiny")
    _randomize_norms(model_a, 3)
    model_b = models.build("tiny")
    model_b.set_weights(model_a.get_weights())
    second_a, second_b = bn_anatomy.norm_layers(model_a)[1], bn_anatomy.norm_layers(model_b)[1]
    second_b.gamma.assign(second_a.gamma.numpy() * 3.0)  # ||3γ − γ|| / ||γ|| = 2
    shift = np.zeros(second_a.beta.shape, "float32")
    shift[0] = 0.1
    second_b.beta.assign(second_a.beta.numpy() + shift)
    rows = bn_anatomy.compare_bn(model_a, model_b, layers="all")
    assert [row["depth"] for row in rows] == [0, 1]
    assert all(rows[0][name] == 0.0 for name in bn_anatomy.PARAMETERS)
    assert rows[1]["gamma"] == pytest.approx(2.0, rel=1e-6)
    assert rows[1]["beta"] == pytest.approx(0.1 / np.linalg.norm(second_a.beta.numpy()), rel=1e-5)
    assert rows[1]["mean"] == 0.0 and rows[1]["variance"] == 0.0
    assert "| 2.0000 |" in bn_anatomy.changes_table(rows)
    assert len(bn_anatomy.compare_bn(model_a, model_b)) == 1  # "first" by default


def test_compare_bn_pairs_plain_and_robmask_layers_by_position():
    plain = models.build("tiny", norm="bn")
    robmask = models.build("tiny", norm="robmask")
    _randomize_norms(plain, 4)
    rows = bn_anatomy.compare_bn(plain, robmask, layers="all", p_b=1.0)
    assert [row["layer_b"] for row in rows] == [layer.name for layer in bn_anatomy.norm_layers(robmask)]
    # A fresh RobMask layer is plain BN at every p: γ = 1, μ = 0.
    first = bn_anatomy.norm_layers(plain)[0].gamma.numpy()
    assert rows[0]["gamma"] == pytest.approx(np.linalg.norm(1 - first) / np.linalg.norm(first), rel=1e-6)
    with pytest.raises(ValueError, match="nope"):
        bn_anatomy.compare_bn(plain, robmask, layers=["nope"])
    with pytest.raises(ValueError, match="numbers of batch normalizations"):
        bn_anatomy.compare_bn(plain, models.build("resnet20"))


def test_mask_statistics_on_hand_made_maps():
    a = np.zeros((1, 2, 2, 3))
    b = np.zeros((1, 2, 2, 3))
    a[0, :, :, 0] = 1.0   # open in A, blocked in B
    a[0, :, :, 1] = 1.0   # magnified ×3 in B
    b[0, :, :, 1] = 3.0
    a[0, 0, 0, 2] = 4.0   # mean 1 in A, halved in B
    b[0, 0, 0, 2] = 2.0
    stats = masks.mask_statistics(a, b, magnify_threshold=1.5)
    assert stats["blocked_a"] == 0.0
    assert stats["blocked_b"] == pytest.approx(1 / 3)
    assert stats["newly_blocked"] == pytest.approx(1 / 3)
    assert stats["mean_magnification"] == pytest.approx((0 + 3 + 0.5) / 3)
    assert stats["magnified"] == pytest.approx(1 / 3)


def test_compare_masks_finds_the_channel_a_masking_blocks():
    model = models.build("tiny", norm="robmask", input_shape=(8, 8, 3))
    first = bn_anatomy.norm_layers(model)[0]
    beta = first.beta_basis.numpy()
    beta[1, 2] = -1e3   # at p = 1 channel 2 is pushed below zero everywhere: blocked by the ReLU
    gamma = first.gamma_basis.numpy()
    gamma[1, 3] = 4.0   # at p = 1 channel 3 is scaled up
    first.beta_basis.assign(beta)
    first.gamma_basis.assign(gamma)
    x = np.random.default_rng(0).uniform(0, 1, (6, 8, 8, 3)).astype("float32")
    rows, features = masks.compare_masks(model, x, p_a=0.0, p_b=1.0, layers="all")
    assert [row["layer"] for row in rows] == [layer.name for layer in bn_anatomy.norm_layers(model)]
    a, b = features[first.name]
    assert np.all(b[..., 2] == 0) and np.any(a[..., 2] > 0)
    # Independent: p = 1 equals a plain model whose first BN has the p = 1 row.
    probe = keras.Model(model.input, model.get_layer(index=[i for i, layer in enumerate(model.layers)
                                                            if layer is first][0] + 1).output)
    expected = keras.ops.convert_to_numpy(probe({"images": x, "condition": np.ones((6, 1), "float32")}))
    np.testing.assert_allclose(b, np.maximum(expected, 0), atol=1e-5)
    stats = masks.mask_statistics(a, b)
    assert rows[0]["blocked_b"] == pytest.approx(stats["blocked_b"])
    assert rows[0]["newly_blocked"] >= 1 / first.moving_mean.shape[0] - 1e-9
    assert rows[1]["blocked_a"] == pytest.approx(masks.mask_statistics(*features[rows[1]["layer"]])["blocked_a"])


def _write_history(folder, values):
    folder.mkdir()
    lines = ["epoch,loss,val_accuracy"] + [f"{i},{1.0 / (i + 1)},{v}" for i, v in enumerate(values)]
    (folder / "history.csv").write_text("\n".join(lines) + "\n")
    return str(folder)


def test_plot_histories_draws_each_run(tmp_path):
    run_a = _write_history(tmp_path / "bn", [0.5, 0.6, 0.7])
    run_b = _write_history(tmp_path / "robmask", [0.55, 0.65])
    curves = plot_histories([run_a, run_b], str(tmp_path / "h.png"))
    assert curves["bn"] == ([1.0, 2.0, 3.0], [0.5, 0.6, 0.7])
    assert curves["robmask"][1] == [0.55, 0.65]
    assert (tmp_path / "h.png").stat().st_size > 0
    assert read_history(run_a)["loss"][1] == 0.5
    with pytest.raises(ValueError, match="val_robust_accuracy"):
        plot_histories([run_a], str(tmp_path / "x.png"), metric="val_robust_accuracy")


def test_inspect_and_plot_history_commands(tmp_path, capsys):
    model_a = models.build("tiny", norm="robmask")
    _randomize_norms(model_a, 5)
    model_b = models.build("tiny", norm="robmask")
    model_b.set_weights(model_a.get_weights())
    layer_b = bn_anatomy.norm_layers(model_b)[0]
    layer_b.gamma_basis.assign(layer_b.gamma_basis.numpy() * 2.0)
    model_a.save(tmp_path / "a.keras")
    model_b.save(tmp_path / "b.keras")

    out = tmp_path / "bn"
    assert main(["inspect", "bn", str(tmp_path / "a.keras"), str(tmp_path / "b.keras"),
                 "--layers", "all", "--p-a", "0.5", "--p-b", "0.5", "--out", str(out)]) == 0
    result = json.loads((out / "bn_changes.json").read_text())
    assert [row["gamma"] for row in result["layers"]] == pytest.approx([1.0, 0.0])
    assert result["layers"][0]["mean"] == 0.0
    assert (out / "bn_changes_by_depth.png").exists() and (out / "bn_changes.md").exists()

    out = tmp_path / "masks"
    assert main(["inspect", "masks", str(tmp_path / "a.keras"), "--p", "0,1", "--images", "2",
                 "--stats-images", "16", "--out", str(out)]) == 0
    result = json.loads((out / "masks.json").read_text())
    assert len(result["layers"]) == 2 and result["settings"]["images"] == 16
    assert (out / "masks.png").stat().st_size > 0
    assert main(["inspect", "masks", str(tmp_path / "a.keras"), "--p", "0"]) == 2
    assert "two maskings" in capsys.readouterr().err

    run = _write_history(tmp_path / "run", [0.1, 0.2])
    assert main(["plot-history", run, "--out", str(tmp_path / "curve.png")]) == 0
    assert (tmp_path / "curve.png").exists()
