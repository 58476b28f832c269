import os

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
        ("method: {attack: {name: pgd, update: nesterov}}",
         "method.attack: update must be one of sign, adam. Received: update='nesterov'"),
        ("eval: {attacks: [{name: stadv, flow_bound: 0.1, flow_unit: cm}]}",
         r"eval.attacks\[0\]: flow_unit must be one of"),
        ("eval: {preset: table9}", "eval.preset: 'table9' is not one of paper1_table1"),
        ("landscape: {norm: l2}", "landscape.norm: 'l2' is not one of"),
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


# ---------------------------------------------------------------- extends


def _write(folder, name, text):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_extends_deep_merges_mappings_and_replaces_other_values(tmp_path):
    _write(tmp_path, "base.yaml",
           "name: base\nseed: 3\n"
           "model: {name: resnet18, norm_options: {k: 2}, options: {width: 16}}\n"
           "train: {epochs: 20, learning_rate: 0.1, step_milestones: [5, 10]}\n"
           "method: {attack: {name: pgd, eps: 8/255, steps: 7}}\n")
    child = _write(tmp_path, "child.yaml",
                   "extends: base.yaml\nname: child\n"
                   "model: {norm: robmask, norm_options: {k: 3}}\n"
                   "train: {epochs: 5, step_milestones: [2]}\n"
                   "method: {kind: robmask, attack: {step_size: 1.6/255}}\n")
    config = load_config(child)
    assert config.name == "child" and config.seed == 3  # replaced; inherited
    assert config.model.name == "resnet18" and config.model.norm == "robmask"
    assert config.model.norm_options == {"k": 3} and config.model.options == {"width": 16}
    assert config.train.epochs == 5 and config.train.learning_rate == 0.1
    assert config.train.step_milestones == [2]  # a list replaces, it does not append
    attack = config.method.attack
    assert (attack.name, attack.steps, config.method.kind) == ("pgd", 7, "robmask")
    assert attack.eps == pytest.approx(8 / 255) and attack.step_size == pytest.approx(1.6 / 255)
    assert "extends" not in to_dict(config)


def test_extends_chains_with_paths_relative_to_each_file(tmp_path, monkeypatch):
    _write(tmp_path, "shared/root.yaml", "seed: 1\ntrain: {epochs: 7, optimizer: adam}\n")
    _write(tmp_path, "shared/middle.yaml", "extends: root.yaml\nseed: 2\ndata: {batch_size: 16}\n")
    leaf = _write(tmp_path, "exp/leaf.yaml", "extends: ../shared/middle.yaml\nname: leaf\ntrain: {epochs: 9}\n")
    monkeypatch.chdir(tmp_path / "shared")  # the working directory plays no part
    config = load_config(os.path.relpath(leaf, tmp_path / "shared"))
    assert (config.seed, config.data.batch_size) == (2, 16)
    assert (config.train.epochs, config.train.optimizer) == (9, "adam")


def test_set_overrides_apply_on_top_of_the_merged_files(tmp_path):
    _write(tmp_path, "base.yaml", "train: {epochs: 20, learning_rate: 0.1}\n")
    child = _write(tmp_path, "child.yaml", "extends: base.yaml\nname: c\ntrain: {epochs: 5}\n")
    config = load_config(child, ["train.epochs=2", "train.learning_rate=0.3", "data.source=cifar100"])
    assert (config.train.epochs, config.train.learning_rate, config.data.source) == (2, 0.3, "cifar100")
    with pytest.raises(ConfigError, match="extends can only be written in a config file"):
        load_config(child, ["extends=other.yaml"])


def test_extends_cycle_is_refused_naming_the_files(tmp_path):
    _write(tmp_path, "a.yaml", "extends: b.yaml\n")
    _write(tmp_path, "b.yaml", "extends: c.yaml\n")
    _write(tmp_path, "c.yaml", "extends: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle") as info:
        load_config(tmp_path / "a.yaml")
    cycle = str(info.value).split("cycle: ")[1].split(" → ")
    assert [os.path.basename(f) for f in cycle] == ["a.yaml", "b.yaml", "c.yaml", "a.yaml"]
    assert os.path.dirname(cycle[0]) == os.path.realpath(tmp_path)
    _write(tmp_path, "self.yaml", "extends: self.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "self.yaml")


@pytest.mark.parametrize(
    "base_text, message",
    [
        ("train: {epoch: 3}\n", "unknown key 'train.epoch'"),
        ("method: {attack: {eps: 9}}\n", "method.attack.eps: 9.0 is outside"),
        ("extends: missing.yaml\n", "extends: no config file at"),
        ("[1, 2]\n", "top level: expected a mapping"),
    ],
)
def test_error_in_a_base_names_the_base_file(tmp_path, base_text, message):
    _write(tmp_path, "base.yaml", base_text)
    child = _write(tmp_path, "child.yaml", "extends: base.yaml\nname: c\n")
    with pytest.raises(ConfigError, match=message) as info:
        load_config(child)
    assert str(info.value).startswith(str(tmp_path / "base.yaml"))


def test_bad_extends_value_and_bad_key_in_the_extending_file(tmp_path):
    _write(tmp_path, "base.yaml", "seed: 1\n")
    bad = _write(tmp_path, "bad.yaml", "extends: [base.yaml]\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: extends: expected the path of a config file"):
        load_config(bad)
    child = _write(tmp_path, "child.yaml", "extends: base.yaml\ntrain: {lr: 1}\n")
    with pytest.raises(ConfigError, match=r"child.yaml: unknown key 'train.lr'"):
        load_config(child)


# ---------------------------------------------------------------- name fields


def test_name_fields_follow_the_resolved_config(tmp_path):
    path = _write(tmp_path, "c.yaml",
                  "name: run-{model.name}-{data.source}-{train.epochs}ep-lr{train.learning_rate}\n"
                  "model: {name: resnet18}\ndata: {source: cifar10}\ntrain: {epochs: 20, learning_rate: 0.1}\n")
    assert load_config(path).name == "run-resnet18-cifar10-20ep-lr0.1"
    overridden = load_config(path, ["model.name=densenet121", "data.source=/data/cifar10_mini.npz",
                                    "train.epochs=100"])
    assert overridden.name == "run-densenet121-cifar10_mini-100ep-lr0.1"  # a path gives its file name
    assert load_config(path, ["name=mine"]).name == "mine"


@pytest.mark.parametrize(
    "name, message",
    [
        ("x-{model.nmae}", r"name: \{model.nmae\} names no config key"),
        ("x-{model}", r"name: \{model\} must name a key holding one value"),
        ("x-{model.init_from}", r"must name a key holding one value; it holds None"),
        ("x-{name}", "cannot refer to the name itself"),
        ("x-{model.name", "unbalanced braces"),
        ("x-model.name}", "unbalanced braces"),
    ],
)
def test_bad_name_fields_are_named(tmp_path, name, message):
    path = _write(tmp_path, "c.yaml", f"name: '{name}'\n")
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert "c.yaml" in str(info.value)


def test_written_config_is_resolved_and_reloads_to_the_same(tmp_path):
    from tfadv.config import save_config

    _write(tmp_path, "base.yaml", "name: 'b-{model.name}'\ntrain: {epochs: 20}\n")
    child = _write(tmp_path, "child.yaml", "extends: base.yaml\ntrain: {learning_rate: 0.05}\n")
    config = load_config(child, ["model.name=tiny"])
    save_config(config, tmp_path / "config.yaml")
    text = (tmp_path / "config.yaml").read_text()
    assert "extends" not in text and "name: b-tiny" in text
    assert to_dict(load_config(tmp_path / "config.yaml")) == to_dict(config)


# ---------------------------------------------------------------- paper 2's grid

PAPER2 = os.path.join(os.path.dirname(__file__), "..", "configs", "paper2")
PAPER2_GRID = [(arch, dataset, epochs) for arch in ("resnet18", "preact_resnet18", "densenet121")
               for dataset in ("cifar10", "cifar100") for epochs in (20, 100)]


@pytest.mark.parametrize("method, norm, kind", [("bn", "bn", "standard"), ("advprop", "dual_bn", "advprop"),
                                                ("robmask", "robmask", "robmask")])
def test_paper2_method_files_cover_the_grid_with_overrides(method, norm, kind):
    default = load_config(os.path.join(PAPER2, f"{method}.yaml"))
    assert default.name == f"paper2-resnet18-cifar10-{method}-20ep"
    for arch, dataset, epochs in PAPER2_GRID:
        config = load_config(os.path.join(PAPER2, f"{method}.yaml"),
                             [f"model.name={arch}", f"data.source={dataset}", f"train.epochs={epochs}"])
        assert config.name == f"paper2-{arch}-{dataset}-{method}-{epochs}ep"
        assert (config.model.name, config.data.source, config.train.epochs) == (arch, dataset, epochs)
        assert (config.model.norm, config.method.kind) == (norm, kind)
        # The paper's shared settings: SGD 0.9, wd 5e-4, cosine from 0.1, PGD-7 at 8/255.
        train = config.train
        assert (train.optimizer, train.momentum, train.weight_decay, train.learning_rate, train.schedule) == \
            ("sgd", 0.9, 5e-4, 0.1, "cosine")
        assert config.method.attack.eps == pytest.approx(8 / 255) and config.method.attack.steps == 7
        assert config.eval.preset == "paper2_sweep"


def test_paper2_training_attacks_step_eps_over_5():
    # "We set the PGD attack strength ε = 8/255 ... and the step-size to ε/5." (all methods)
    from tfadv import models
    from tfadv.training import methods

    advprop = load_config(os.path.join(PAPER2, "advprop.yaml"), ["model.name=tiny"])
    wrapped = methods.wrap_from_config(models.build("tiny", norm="dual_bn"), advprop)
    assert wrapped.attack.steps == 7 and wrapped.attack.step_size == pytest.approx(8 / 255 / 5)
    robmask = load_config(os.path.join(PAPER2, "robmask.yaml"), ["model.name=tiny"])
    wrapped = methods.wrap_from_config(models.build("tiny", norm="robmask", norm_options={"k": 2}), robmask)
    assert wrapped.steps == 7 and wrapped.step_fraction == pytest.approx(1 / 5)
    assert wrapped.eps_max == pytest.approx(8 / 255)


def test_a_value_replaced_later_is_not_an_error(tmp_path):
    # The merged config is what counts: a file or a --set may replace a base's bad value.
    _write(tmp_path, "base.yaml", "train: {epochs: many}\n")
    child = _write(tmp_path, "child.yaml", "extends: base.yaml\nname: c\n")
    assert load_config(child, ["train.epochs=3"]).train.epochs == 3
    fixed = _write(tmp_path, "fixed.yaml", "extends: base.yaml\nname: c\ntrain: {epochs: 4}\n")
    assert load_config(fixed).train.epochs == 4
    worse = _write(tmp_path, "worse.yaml", "extends: base.yaml\nname: c\ntrain: {epochs: lots}\n")
    with pytest.raises(ConfigError, match=r"worse.yaml: train.epochs: expected an integer, got 'lots'"):
        load_config(worse)
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


def test_vocabularies_are_their_owners_own():
    """The config checks names against the tuples of the packages that define them."""
    from tfadv.attacks.spec import ATTACK_NAMES
    from tfadv.config.schema import CHOICES
    from tfadv.data.sources import SPLITS
    from tfadv.evaluation.specs import PRESETS
    from tfadv.landscape import directions

    assert CHOICES[("eval", "preset")] is PRESETS
    assert CHOICES[("attack", "name")] is ATTACK_NAMES and CHOICES[("landscape", "split")] is SPLITS
    assert CHOICES[("landscape", "norm")] is directions.NORMS
    assert CHOICES[("landscape", "ignore")] is directions.IGNORES
    assert CHOICES[("landscape", "mode")] is directions.MODES
    assert ("attack", "update") not in CHOICES  # checked once, by tfadv.attacks.pgd.check_update


def test_every_evaluation_preset_is_accepted(tmp_path):
    from tfadv.evaluation.specs import PRESETS

    for name in PRESETS:
        path = tmp_path / f"{name}.yaml"
        path.write_text(f"eval: {{preset: {name}}}\n")
        assert load_config(path).eval.preset == name
