import pytest

from tfadv.config import ConfigError, load_config, to_dict


def test_defaults_fractions_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: demo\nmethod:\n  kind: adversarial\n  attack: {name: fgsm, eps: 8/255}\n")
    config = load_config(path, ["train.epochs=3", "model.norm_options={k: 3}", "data.source=cifar10"])
    assert config.method.attack.eps == pytest.approx(8 / 255)
    assert config.train.epochs == 3 and config.model.norm_options == {"k": 3}
    assert config.data.source == "cifar10" and config.train.optimizer == "sgd"
    assert to_dict(config)["method"]["attack"]["name"] == "fgsm"


@pytest.mark.parametrize(
    "text, message",
    [
        ("trian: {}", "unknown key 'trian'"),
        ("train: {epochs: three}", "train.epochs: expected an integer, got 'three'"),
        ("train: {epochs: 2.5}", "train.epochs: expected an integer"),
        ("method: {attack: {name: cw}}", "method.attack.name: 'cw' is not one of"),
        ("method: {attack: {eps: 8}}", r"method.attack.eps: 8.0 is outside \[0.0, 1.0\]"),
        ("model: {norm: layernorm}", "model.norm: 'layernorm' is not one of"),
        ("data: {augment: maybe}", "data.augment: expected true or false"),
        ("eval: {attacks: [{name: pgd, epz: 1}]}", r"unknown key 'eval.attacks\[0\].epz'"),
        ("train: [1, 2]", "train: expected a mapping"),
        ("method: {eps_max: 0}", "method.eps_max: 0.0 is outside"),
    ],
)
def test_errors_name_key_value_and_file(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert "bad.yaml" in str(info.value)


def test_override_errors():
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, ["train.epochs"])
    with pytest.raises(ConfigError, match="train.lr"):
        load_config(None, ["train.lr=0.1"])
    with pytest.raises(ConfigError, match="No config file"):
        load_config("/nonexistent.yaml")


def test_every_shipped_config_validates():
    import glob
    import os

    root = os.path.join(os.path.dirname(__file__), "..", "configs")
    paths = glob.glob(os.path.join(root, "**", "*.yaml"), recursive=True)
    assert paths, "configs/ ships experiment files"
    for path in paths:
        load_config(path)


def test_config_attack_names_match_the_attacks_package():
    # tfadv.config imports nothing of tfadv, so it keeps its own copy of the names.
    from tfadv.attacks.spec import ATTACK_NAMES
    from tfadv.config import ATTACK_NAMES as CONFIG_ATTACK_NAMES

    assert tuple(CONFIG_ATTACK_NAMES) == tuple(ATTACK_NAMES)
