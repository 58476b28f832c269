"""The reproduction drivers in tools/: configs at the paper's scale, the published-numbers
table, and both drivers end to end with --smoke (then again, resuming)."""
import importlib.util
import json
import os
import re

import pytest
import yaml

from tfadv.evaluation.results import decode_mask
from tfadv.experiments import paper1, paper2

TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")


def _load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(TOOLS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


paper1_tool = _load("reproduce_paper1")
paper2_tool = _load("reproduce_paper2")
common = _load("_common")


def _paper1_options(argv):
    """``tools/reproduce_paper1.py``'s command line as the profile's options."""
    return paper1_tool.options_from(paper1_tool.build_parser().parse_args(argv))


def _paper2_options(argv):
    """``tools/reproduce_paper2.py``'s command line as the profile's options."""
    return paper2_tool.options_from(paper2_tool.build_parser().parse_args(argv))


# ---------------------------------------------------------------- configs at the paper's scale


def test_paper1_configs_are_the_papers_protocol_with_fine_tunings_starting_in_out(tmp_path):
    args = _paper1_options(["--out", str(tmp_path)])
    configs = paper1.experiment_configs(args, paper1.settings_from(args)["source"])
    clean_dir = os.path.join(str(tmp_path), "paper1-resnet32-cifar10-clean")
    assert configs["clean"].model.name == "resnet32" and configs["clean"].train.epochs == 200
    assert configs["clean"].data.source == "cifar10" and configs["clean"].data.limit_train is None
    for attack in ("fgsm", "pgd", "stadv"):
        config = configs[attack]
        assert config.model.init_from == clean_dir and config.output_dir == str(tmp_path)
        assert config.method.kind == "finetune" and config.method.attack.name == attack
        # The released scripts: 200 epochs, Adam 1e-3, online 1:1 on crop + flip batches.
        assert config.train.optimizer == "adam" and config.train.epochs == 200 and config.method.online
        assert config.data.augment and config.train.learning_rate == pytest.approx(1e-3)
    pgd = configs["pgd"].method.attack
    assert pgd.eps == pytest.approx(8 / 255) and (pgd.steps, pgd.update, pgd.step_size) == (100, "adam", 0.01)
    assert configs["fgsm"].method.attack.eps == pytest.approx(8 / 255)
    stadv = configs["stadv"].method.attack
    assert (stadv.flow_unit, stadv.flow_bound, stadv.tau, stadv.learning_rate, stadv.steps) == (
        "grid", 0.05, 0.05, 0.001, 100)
    # The clean model: akamaster/pytorch_resnet_cifar10's recipe (the checkpoint the loader names).
    clean = configs["clean"].train
    assert (clean.schedule, clean.step_milestones, clean.weight_decay) == ("step", [100, 150], 1e-4)


def test_paper1_paper_settings_scale_and_set_overrides(tmp_path):
    args = _paper1_options(
        ["--out", str(tmp_path), "--settings", "paper", "--epochs-scale", "0.01", "--limit-train", "500",
         "--set", "train.distribute=mirrored"])
    configs = paper1.experiment_configs(args, "cifar10")
    assert configs["clean"].train.epochs == 2  # 200 · 0.01
    assert configs["clean"].train.step_milestones == [1, 2]  # 100 and 150 of 200, scaled with the epochs
    path = os.path.join(common.CONFIGS, "paper1", "_finetune_evalsettings.yaml")
    with open(path, encoding="utf-8") as handle:
        paper_epochs = yaml.safe_load(handle)["train"]["epochs"]
    assert configs["pgd"].train.epochs == common.scaled_epochs(paper_epochs, 0.01)  # at least one
    assert configs["pgd"].name.endswith("-evalsettings") and configs["pgd"].train.optimizer == "sgd"
    assert configs["pgd"].method.attack.eps == pytest.approx(1 / 255) and configs["pgd"].method.attack.steps == 10
    assert not configs["pgd"].method.online and not configs["pgd"].data.augment
    assert all(c.data.limit_train == 500 and c.train.distribute == "mirrored" for c in configs.values())
    # One --out holds both settings: the clean model is shared, the fine-tuned ones are named apart.
    assert paper1.model_names("paper") == {"clean": "clean", "fgsm": "fgsm-finetuned-paper",
                                           "pgd": "pgd-finetuned-paper", "stadv": "stadv-finetuned-paper"}
    assert paper1.settings_from(args)["report"] == "report-paper.md"


def test_paper1_small_profile_is_the_protocol_shortened(tmp_path):
    data = str(tmp_path / "subset.npz")
    args = paper1.prepare(_paper1_options(["--profile", "small", "--data", data]))
    assert args.out == "runs/paper1-small"
    settings = paper1.settings_from(args)
    assert settings["source"] == data
    assert (settings["eval_limit"], settings["grid"], settings["examples"], settings["stadv_eval_steps"]) == (
        500, "-1:1:15", 256, 30)
    assert [a.steps for a in paper1.table1_attacks(settings) if a.name == "stadv"] == [30]
    configs = paper1.experiment_configs(args, settings["source"])
    clean = configs["clean"]
    assert (clean.model.name, clean.model.options, clean.train.epochs) == ("resnet32", {"width": 8}, 15)
    assert clean.data.augment is True and clean.data.source == data and clean.data.limit_test == 256
    assert clean.train.step_milestones == [8, 11]  # the recipe's 100, 150 of 200, scaled to 15
    for attack in ("fgsm", "pgd", "stadv"):
        config = configs[attack]
        assert (config.model.name, config.model.options, config.train.epochs) == ("resnet32", {"width": 8}, 3)
        assert config.model.init_from == os.path.join("runs/paper1-small", clean.name)
        assert config.method.kind == "finetune" and config.method.online and config.data.augment is True
        assert config.train.optimizer == "adam" and config.train.weight_decay == 0.0
    # The settings stay the configs' but for the named shortenings: PGD 10 Adam steps, stAdv 30.
    assert clean.train.weight_decay_mode == "coupled" and clean.train.weight_decay == 1e-4
    assert configs["pgd"].method.attack.eps == pytest.approx(8 / 255) and configs["pgd"].method.attack.steps == 10
    assert configs["fgsm"].method.attack.eps == pytest.approx(8 / 255)
    assert configs["stadv"].method.attack.steps == 30
    # --smoke shrinks further; --epochs-scale and --set still apply on top of the profile.
    smoke = _paper1_options(["--profile", "small", "--data", data, "--smoke", "--out", "o"])
    assert paper1.experiment_configs(smoke, data)["clean"].model.name == "tiny"
    scaled = _paper1_options(["--profile", "small", "--data", data, "--epochs-scale", "2", "--out", "o"])
    assert paper1.experiment_configs(scaled, data)["clean"].train.epochs == 30


def test_paper1_profile_finds_configs_from_the_package_or_as_given(tmp_path, monkeypatch):
    """The library profile reads configs/ of the repository, whatever the working directory, or the
    folder it is given; a missing folder is one ValueError naming it."""
    import shutil

    monkeypatch.chdir(tmp_path)
    options = paper1.Paper1Options(out="o", settings="paper")
    default = paper1.experiment_configs(options, "cifar10")
    copy = tmp_path / "my-configs"
    shutil.copytree(common.CONFIGS, copy)
    given = paper1.experiment_configs(paper1.Paper1Options(out="o", settings="paper", configs=str(copy)), "cifar10")
    assert {role: c.train.epochs for role, c in given.items()} == {role: c.train.epochs for role, c in default.items()}
    with pytest.raises(ValueError, match="configs must be .* Received: configs='missing'"):
        paper1.experiment_configs(paper1.Paper1Options(out="o", configs="missing"), "cifar10")


@pytest.mark.parametrize("argv, message", [
    (["--profile", "small"], "--profile small needs --data FILE.npz"),
    (["--profile", "small", "--data", "a.npz", "--source", "cifar10"], "drop --source"),
    (["--data", "a.npz"], "--data is the small profile's data"),
])
def test_paper1_profile_flags_are_checked_in_one_line(argv, message, tmp_path, capsys):
    assert paper1_tool.main(argv + ["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not os.listdir(tmp_path)


def test_paper1_small_profile_smoke_on_generated_images(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    data = str(tmp_path / "generated.npz")
    np.savez(data, x=rng.integers(0, 256, (60, 32, 32, 3), dtype=np.uint8), y=np.arange(60) % 10)
    out = str(tmp_path / "out")
    assert paper1_tool.main(["--profile", "small", "--smoke", "--data", data, "--out", out, "--skip-landscape"]) == 0
    report = open(os.path.join(out, "report.md"), encoding="utf-8").read()
    assert "Profile small under --smoke" in report and "### Table 1" in report and "| clean | ours |" in report
    assert f"not shown for {data} with tiny" in report  # generated images are not CIFAR-10
    with open(os.path.join(out, "paper1-resnet32-cifar10-clean", "config.yaml"), encoding="utf-8") as handle:
        assert yaml.safe_load(handle)["data"]["source"] == data


@pytest.mark.parametrize("arch", paper2.ARCHS)
@pytest.mark.parametrize("dataset", paper2.DATASETS)
@pytest.mark.parametrize("epochs", paper2.EPOCHS)
def test_paper2_configs_exist_for_every_choice(arch, dataset, epochs, tmp_path):
    args = _paper2_options(
        ["--out", str(tmp_path), "--arch", arch, "--dataset", dataset, "--epochs", str(epochs)])
    configs = paper2.experiment_configs(args, paper2.settings_from(args))
    assert [configs[m].model.norm for m in paper2.COMPARED_METHODS] == ["bn", "dual_bn", "robmask"]
    assert [configs[m].method.kind for m in paper2.COMPARED_METHODS] == ["standard", "advprop", "robmask"]
    for role, config in configs.items():
        finetune = role in ("bn_ft_adversarial", "adversarial_ft_clean")
        assert (config.model.name, config.data.source, config.train.epochs) == (
            arch, dataset, paper2.TABLE1_FINETUNE_EPOCHS if finetune else epochs)
    assert configs["adversarial"].method.kind == "adversarial"
    assert configs["bn_ft_adversarial"].model.init_from == os.path.join(str(tmp_path), configs["bn"].name)


def test_paper2_default_out_names_the_choice():
    assert paper2_tool.build_parser().parse_args(["--arch", "densenet121"]).out is None  # resolved by paper2.prepare
    assert paper2.prepare(paper2.Paper2Options(arch="densenet121")).out == os.path.join(
        "runs", "paper2-densenet121-cifar10-100ep")
    assert paper2.prepare(paper2.Paper2Options(profile="small", data="a.npz")).out == os.path.join("runs", "paper2-small")


# ---------------------------------------------------------------- published numbers


def test_published_numbers_file_only_holds_sourced_rows_of_the_right_length():
    # tests/test_published.py checks the numbers and the rendering; here: the drivers read the package's file.
    assert common.PUBLISHED_FILE.endswith(os.path.join("tfadv", "evaluation", "published_numbers.yaml"))
    with open(common.PUBLISHED_FILE, encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    for paper in ("paper1", "paper2"):
        assert data[paper]["title"] and data[paper]["url"]
        assert common.load_published(paper) == data[paper]
        for table in data[paper]["tables"].values():
            assert table["units"] in ("percent", "distance")
            if table["rows"]:
                assert table["found_in"], "published numbers need their source"
            for row in table["rows"].values():
                assert len(row) == len(table["columns"])


def test_comparison_table_puts_the_papers_numbers_beneath_ours():
    table = {"columns": ["clean", "fgsm"], "rows": {"clean": [91.5, None]}, "found_in": "Table 1"}
    rows = [("clean", [92.25, 10.0], common.published_row(table, "clean")),
            ("fgsm-finetuned", [90.0, None], common.published_row(table, "fgsm"))]
    lines = common.comparison_table(["Clean", "FGSM"], rows, "percent").splitlines()
    assert lines[2] == "| clean | ours | 92.25 | 10.00 |"
    assert lines[3] == "| | paper | 91.50 | not found |"
    assert lines[4] == "| fgsm-finetuned | ours | 90.00 | – |"
    assert lines[5] == f"| | paper | {common.NOT_FOUND} |  |"
    with pytest.raises(ValueError, match="'bad' has 1 numbers for 2 columns"):
        common.published_row({"columns": ["a", "b"], "rows": {"bad": [1.0]}}, "bad")


def test_scaled_epochs_never_drop_to_zero():
    assert [common.scaled_epochs(e, s) for e, s in ((200, 1.0), (200, 0.1), (10, 0.01), (100, 0.5))] == [
        200, 20, 1, 50]


# ---------------------------------------------------------------- end to end (--smoke)


def _ours_rows(report, heading):
    """``{model: [cells]}`` of the "ours" rows of the table under ``heading``."""
    section = report.split(heading, 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) > 2 and cells[1] == "ours":
            rows[cells[0]] = cells[2:]
    return rows


def _accuracy(record, part):
    return 100 * decode_mask(record["parts"][part]["correct"]).mean()


def _snapshot(paths):
    return {path: (os.path.getmtime(path), open(path, "rb").read()) for path in paths}


@pytest.fixture(scope="module")
def paper1_smoke(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("paper1"))
    assert paper1_tool.main(["--smoke", "--out", out]) == 0
    return out


def test_paper1_smoke_writes_tables_beside_the_published_column(paper1_smoke):
    report = open(os.path.join(paper1_smoke, "report.md"), encoding="utf-8").read()
    results = json.load(open(os.path.join(paper1_smoke, "eval", "eval.json"), encoding="utf-8"))
    table1 = _ours_rows(report, "### Table 1")
    table2 = _ours_rows(report, "### Table 2")
    assert set(table1) == set(table2) == set(paper1.model_names(paper1.DEFAULT_SETTINGS).values())
    for name, record in results["models"].items():
        # Columns in the paper's order: clean, FGSM, PGD, stAdv, each from its own part's per-example record.
        parts = [p for p in record["parts"] if p.startswith("clean")]
        parts += [p for attack in ("fgsm", "pgd", "stadv") for p in record["parts"] if p.startswith(attack)]
        expected = [f"{_accuracy(record, part):.2f}" for part in parts]
        assert table1[name] == expected
        flipped = [record["parts"][p]["ssim_distance_flipped"] for p in parts[1:]]
        assert table2[name] == ["–" if v is None else f"{v:.4f}" for v in flipped]
    # Digits are not the paper's setting (CIFAR-10, ResNet-32): no published rows, one sentence why.
    assert "| | paper |" not in report
    assert "Published numbers are for CIFAR-10 ResNet-32; not shown for digits with tiny." in report
    assert "comparison_contour.png" in report and "| clean |" in report.split("Sharpness", 1)[1]
    for name in paper1.model_names(paper1.DEFAULT_SETTINGS).values():
        assert os.path.exists(os.path.join(paper1_smoke, "landscapes", name, "surface.h5"))


def test_paper1_second_run_resumes_without_recomputing(paper1_smoke, capsys):
    runs = [os.path.join(paper1_smoke, d) for d in os.listdir(paper1_smoke) if d.startswith("paper1-")]
    files = [os.path.join(r, f) for r in runs for f in ("history.csv", "model.keras")]
    files += [os.path.join(paper1_smoke, "landscapes", n, f) for n in paper1.model_names(paper1.DEFAULT_SETTINGS).values()
              for f in ("surface.h5", "sharpness.json")]
    before = _snapshot(files)
    parts_before = json.load(open(os.path.join(paper1_smoke, "eval", "eval.json"), encoding="utf-8"))["models"]
    capsys.readouterr()
    assert paper1_tool.main(["--smoke", "--out", paper1_smoke]) == 0
    printed = capsys.readouterr().out
    assert _snapshot(files) == before
    assert printed.count("finished, reused") == 4 and printed.count("stored, skipped") == 16
    parts_after = json.load(open(os.path.join(paper1_smoke, "eval", "eval.json"), encoding="utf-8"))["models"]
    assert parts_after == parts_before


def test_paper1_refuses_a_changed_config_in_the_same_out(paper1_smoke, capsys):
    assert paper1_tool.main(["--smoke", "--out", paper1_smoke, "--set", "train.learning_rate=0.5"]) == 2
    assert "different config" in capsys.readouterr().err


def test_paper2_smoke_end_to_end_then_resumes(tmp_path, capsys):
    out = str(tmp_path)
    assert paper2_tool.main(["--smoke", "--out", out]) == 0
    report = open(os.path.join(out, "report.md"), encoding="utf-8").read()
    results = json.load(open(os.path.join(out, "eval", "eval.json"), encoding="utf-8"))
    sweep = _ours_rows(report, "### Accuracy (%) under")
    assert set(sweep) == {"bn", "advprop (p=0)", "robmask (p=0)"}
    for name, record in results["models"].items():
        p = None if name == "bn" else 0.0
        expected = []
        for attack_id in results["plan"]["sweep"]:
            (part,) = [v for v in record["parts"].values() if v["attack_id"] == attack_id and v["p"] == p]
            expected.append(f"{100 * decode_mask(part['correct']).mean():.2f}")
        row = sweep[name if p is None else f"{name} (p=0)"]
        assert row == expected
        (clean,) = [v for v in record["parts"].values() if v["attack_id"] is None]
        assert row[0] == f"{100 * clean['accuracy']:.2f}"  # ε = 0 is the clean accuracy
    assert "| | paper |" not in report and "Published numbers are for CIFAR-10" in report  # digits: not shown
    for name in ("advprop", "robmask"):
        assert re.search(rf"Trade-off over the masking strength p — {name}\n\n\| p \|", report)
    _check_table1(report, out)
    histories = [os.path.join(out, d, "history.csv") for d in os.listdir(out) if d.startswith("paper2-")]
    assert len(histories) == 6  # bn, advprop, robmask; Table 1's adversarial run and two BN-only fine-tunings
    before = _snapshot(histories)
    capsys.readouterr()
    assert paper2_tool.main(["--smoke", "--out", out]) == 0
    printed = capsys.readouterr().out
    # Stored parts: the sweep over paper 2's 5 ε (6 + 8 + 8) and Table 1 (4 models × 2, 2 interpolations × 4).
    assert printed.count("finished, reused") == 6 and printed.count("stored, skipped") == 6 + 8 + 8 + 8 + 8
    assert _snapshot(histories) == before
    again = json.load(open(os.path.join(out, "eval", "eval.json"), encoding="utf-8"))
    assert again["models"] == results["models"]


def _check_table1(report, out):
    """Table 1's rows are eval-table1/eval.json's; each curve's ends are its two Table 1 models."""
    results = json.load(open(os.path.join(out, "eval-table1", "eval.json"), encoding="utf-8"))
    attack_id = results["plan"]["attacks"][0]
    section = report.split("### Table 1", 1)[1].split("\n### ", 1)[0]
    accuracy = {}
    for name, record in results["models"].items():
        if record["conditioned"]:
            continue
        accuracy[name] = (_accuracy(record, "clean"), _accuracy(record, attack_id))
        assert f"| {name} | {accuracy[name][0]:.2f} | {accuracy[name][1]:.2f} |" in section
    assert len(accuracy) == 4
    ends = {"Standard training": ("Standard training", "Standard training + BN-only fine-tuning on adversarial images"),
            "Adversarial training": ("Adversarial training + BN-only fine-tuning on clean images",
                                     "Adversarial training")}
    for block, (clean_end, robust_end) in ends.items():
        record = results["models"][f"{block}: interpolation"]
        for p, end in ((0.0, clean_end), (1.0, robust_end)):
            part = f"{attack_id} @ p={p!r}"
            assert (100 * record["parts"][part]["clean_accuracy"], _accuracy(record, part)) == pytest.approx(
                accuracy[end])
    masking = json.load(open(os.path.join(out, "eval-table1", "masking.json"), encoding="utf-8"))
    assert masking["statistics"] == "fold" and 'statistics="fold"' in report


def test_paper2_small_profile_configs(tmp_path):
    data = str(tmp_path / "subset.npz")
    args = _paper2_options(["--profile", "small", "--data", data, "--out", str(tmp_path)])
    settings = paper2.settings_from(args)
    assert settings == {"source": data, "eval_limit": 500, "sweep_steps": 10, "p_grid": [0.0, 0.5, 1.0]}
    configs = paper2.experiment_configs(args, settings)
    assert list(configs) == ["bn", "advprop", "robmask", "adversarial", "bn_ft_adversarial", "adversarial_ft_clean"]
    for role, config in configs.items():
        assert config.model.name == "resnet18" and config.model.options == {"width_multiplier": 0.25}
        assert config.data.source == data and config.data.augment is True and config.data.limit_test == 200
        assert config.train.weight_decay == 5e-4 and config.train.weight_decay_mode == "coupled"
        assert config.train.epochs == (1 if "_ft_" in role else 3)
        assert config.name == f"paper2-small-subset-{role.replace('_', '-')}-3ep"
        if role in ("advprop", "adversarial", "bn_ft_adversarial", "adversarial_ft_clean"):
            attack = config.method.attack
            assert (attack.steps, attack.eps, attack.step_size) == (7, pytest.approx(8 / 255), pytest.approx(1.6 / 255))
    robmask = configs["robmask"].method
    # base.yaml's step ε/5, which RobMask keeps as step/ε at every drawn ε = p·ε_max.
    assert robmask.pgd_steps == 7 and robmask.attack.step_size / robmask.attack.eps == pytest.approx(1 / 5)
    assert configs["bn_ft_adversarial"].method.train_on == "adversarial"
    assert configs["bn_ft_adversarial"].model.init_from == os.path.join(str(tmp_path), configs["bn"].name)
    assert configs["adversarial_ft_clean"].model.init_from == os.path.join(str(tmp_path), configs["adversarial"].name)
    with_ablations = paper2.experiment_configs(
        _paper2_options(["--profile", "small", "--data", data, "--ablations", "--skip-table1"]),
        settings)
    assert list(with_ablations) == ["bn", "advprop", "robmask", *paper2.ABLATIONS]
    assert with_ablations["robmask_eps10"].method.eps_max == pytest.approx(10 / 255)
    assert with_ablations["advprop_two_aux"].method.aux_eps == ["4/255", "8/255"]  # read by AdvProp
    assert with_ablations["advprop_random_strength"].method.random_strength is True
    assert all(c.model.name == "resnet18" for c in with_ablations.values())  # the grid point's, not DenseNet's


def test_paper2_profile_flags_are_checked(capsys):
    assert paper2_tool.main(["--profile", "small"]) == 2
    assert "--data FILE.npz" in capsys.readouterr().err
    assert paper2_tool.main(["--data", "x.npz"]) == 2
    assert "--profile paper --data x.npz" in capsys.readouterr().err


def test_paper2_small_profile_smoke_with_ablations(tmp_path):
    """--profile small --smoke on a generated .npz (never the shared file): ablations in their own section."""
    import numpy as np

    rng = np.random.default_rng(0)
    data = str(tmp_path / "generated.npz")
    np.savez(data, x=rng.integers(0, 256, size=(200, 12, 12, 3), dtype=np.uint8),
             y=rng.integers(0, 4, size=200).astype(np.uint8))
    out = str(tmp_path / "out")
    assert paper2_tool.main(["--profile", "small", "--data", data, "--smoke", "--ablations", "--skip-table1",
                        "--out", out]) == 0
    report = open(os.path.join(out, "report.md"), encoding="utf-8").read()
    assert "## Table 1" not in report and "## Ablations (paper 2, Tables 6 and 7)" in report
    section = report.split("## Ablations", 1)[1].split("\n## ", 1)[0]
    for folder, names in (("eval", paper2.COMPARED_METHODS), ("eval-ablations", paper2.ABLATIONS)):
        results = json.load(open(os.path.join(out, folder, "eval.json"), encoding="utf-8"))
        assert results["dataset"]["num_examples"] == 40  # the .npz's held-out 20 %
        for name in names:
            record = results["models"][name]
            p = None if name == "bn" else 0.0
            cells = [f"{_accuracy(record, f'{attack_id} @ p={p!r}' if p is not None else attack_id):.2f}"
                     for attack_id in results["plan"]["sweep"]]
            label = name if p is None else f"{name} (p=0)"
            assert f"| {label} | " + " | ".join(cells) + " |" in section
    assert "![training curves](training_curves.png)" in report
    assert os.path.getsize(os.path.join(out, "training_curves.png")) > 0
    assert sorted(d for d in os.listdir(out) if d.startswith("paper2-")) == sorted(
        f"paper2-small-generated-{m.replace('_', '-')}-3ep" for m in paper2.COMPARED_METHODS + paper2.ABLATIONS)
