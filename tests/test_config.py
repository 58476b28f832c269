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


def test_configs_use_the_vocabularies_of_the_packages_that_define_them(tmp_path):
    from tfadv.attacks import ATTACKS, AttackSpec
    from tfadv.config import AttackConfig
    from tfadv.models import NORM_KINDS
    from tfadv.training.methods import METHOD_KINDS

    # An attack section is AttackSpec's settings: the same keys, nothing of its own.
    import dataclasses

    assert [f.name for f in dataclasses.fields(AttackConfig)] == [f.name for f in dataclasses.fields(AttackSpec)]
    for name in ATTACKS:
        assert load_config(None, [f"method.attack.name={name}"]).method.attack.name == name
    for kind in METHOD_KINDS:
        assert load_config(None, [f"method.kind={kind}"]).method.kind == kind
    for norm in NORM_KINDS:
        assert load_config(None, [f"model.norm={norm}"]).model.norm == norm
    with pytest.raises(ConfigError, match="method.kind: 'madry' is not one of standard, adversarial"):
        load_config(None, ["method.kind=madry"])


@pytest.mark.parametrize(
    "text, message",
    [
        # Checked by AttackSpec itself, named by the section.
        ("method: {attack: {name: stadv, tau: -1}}", "method.attack: tau must be a number >= 0"),
        ("eval: {attacks: [{name: pgd, eps: 0.1, step_size: 0}]}", r"eval.attacks\[0\]: step_size must be"),
        ("method: {attack: {name: pgd, eps: null}}", "method.attack: pgd needs eps"),
        # AttackSpec runs untargeted attacks only: a config has no such key.
        ("method: {attack: {name: pgd, targeted: false}}", "unknown key 'method.attack.targeted'"),
    ],
)
def test_attack_sections_are_validated_by_attack_spec(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_unset_attack_settings_take_the_attacks_own_defaults():
    from tfadv.attacks import AttackSpec

    attack = load_config(None, ["method.attack={name: apgd-ce, eps: 4/255}"]).method.attack
    assert attack.steps is None and attack.restarts is None  # as written: nothing copied
    assert AttackSpec.create(attack).settings() == AttackSpec("apgd-ce", eps=4 / 255).settings()
    default = load_config(None).method.attack
    assert AttackSpec.create(default) == AttackSpec("pgd", eps=8 / 255)
