"""The papers' published numbers: the data file, and the rows beside ours in eval.md and the reports.

Every expected cell is formatted here from the YAML numbers themselves, so a
number changed in the file or mis-rendered by the code fails.
"""
import pytest
import yaml

from tfadv.attacks import AttackSpec
from tfadv.evaluation import format_report
from tfadv.evaluation.published import PUBLISHED_FILE, is_cifar10, load_published, paper_column
from tfadv.evaluation.results import part_id
from tfadv.experiments import Paper1Plan
from tfadv.experiments.published import NOT_REPORTED
from tfadv.experiments.report import _clean_gain, paper1_section, paper2_statements

ATTACKS = [AttackSpec("fgsm", eps=8 / 255), AttackSpec("pgd", eps=1 / 255, steps=10), AttackSpec("stadv")]
MODELS = ("clean", "fgsm-finetuned", "pgd-finetuned", "stadv-finetuned")


def _results(dataset, convention="skimage_compare_ssim"):
    """An eval.json-shaped record of four models under paper 1's attacks (made-up accuracies)."""
    ids = [spec.id for spec in ATTACKS]
    models = {}
    for index, name in enumerate(MODELS):
        parts = {part_id(None): {"attack_id": None, "label": "Clean", "attack": None, "accuracy": 0.5 + index / 100}}
        for column, spec in enumerate(ATTACKS):
            parts[part_id(spec.id)] = {
                "attack_id": spec.id, "label": spec.label, "attack": spec.settings(),
                "accuracy": 0.1 * column, "ssim_distance_flipped": 0.01 * (column + 1),
                "ssim_distance_all": 0.005 * (column + 1),
                "ssim_distances": {name: {"flipped": scale * 0.01 * (column + 1), "all": scale * 0.005 * (column + 1)}
                                   for name, scale in (("gaussian", 1.0), ("skimage_compare_ssim", 0.7))}}
        models[name] = {"parts": parts, "worst_case": {"accuracy": 0.0}, "conditioned": False}
    return {"dataset": {"name": dataset, "num_examples": 10, "fingerprint": "f"},
            "plan": {"attacks": ids, "ssim_convention": convention}, "models": models}


def test_the_file_loads_safely_and_every_number_says_where_it_was_read():
    with open(PUBLISHED_FILE, encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    numbers = 0
    for paper in ("paper1", "paper2"):
        for table in data[paper]["tables"].values():
            for key, row in (table["rows"] or {}).items():
                assert len(row) == len(table["columns"])
                assert table["found_in"] and table["quotes"][key], f"{paper} row {key} needs found_in and a quote"
                numbers += sum(value is not None for value in row)
    for statement in data["paper1"]["statements"] + data["paper2"]["statements"]:
        assert statement["found_in"] and statement["quote"] and statement["claim"]
        assert all(isinstance(v, (int, float)) for v in statement["values"].values())
        numbers += len(statement["values"])
    assert numbers == 16 + 3 + 10  # Table 1, Table 2, the statements
    # Spot checks against the paper's text (Table 1 row "PGD", Table 2 "stAdv", Section 5.2).
    assert data["paper1"]["tables"]["table1"]["rows"]["pgd"] == [87.34, 60.52, 51.20, 13.85]
    assert data["paper1"]["tables"]["table2"]["rows"]["clean"][2] == 0.002801
    times = next(s for s in data["paper2"]["statements"] if s["key"] == "epoch_time")["values"]
    assert (times["advprop_seconds"], times["robmask_seconds"]) == (870, 890)


@pytest.mark.parametrize("name, expected", [
    ("cifar10", True), ("cifar10[test][:500]", True), ("/data/cifar10_mini_train.npz[test][:500]", True),
    ("cifar-10-python.tar.gz", True), ("cifar100", False), ("cifar100[test][:10]", False), ("digits", False),
    ("/tmp/generated.npz", False), (None, False)])
def test_is_cifar10_by_name(name, expected):
    assert is_cifar10(name) is expected


def test_paper_column_needs_the_papers_attack_settings():
    attacks = load_published("paper1")["attacks"]
    assert [paper_column(spec.settings(), attacks) for spec in ATTACKS] == ["fgsm", "pgd", "stadv"]
    assert paper_column(AttackSpec("pgd", eps=8 / 255, steps=10).settings(), attacks) is None
    assert paper_column(AttackSpec("pgd", eps=1 / 255, steps=20).settings(), attacks) is None


def test_eval_md_prints_the_papers_rows_for_cifar10_with_the_files_numbers():
    published = load_published("paper1")
    markdown = format_report(_results("cifar10[test][:10]"))
    table1 = published["tables"]["table1"]["rows"]
    for key, label in (("clean", "none (clean model)"), ("fgsm", "fgsm"), ("pgd", "pgd"), ("stadv", "stadv")):
        assert f"| {label} | " + " | ".join(f"{v:.2f}" for v in table1[key]) + " |" in markdown
    assert "| none (clean model) | 92.64 | 16.88 | 0.00 | 0.00 |" in markdown
    for key, value in zip(("fgsm", "pgd", "stadv"), published["tables"]["table2"]["rows"]["clean"]):
        assert f"| {key} | {value:g} |" in markdown
    assert "| fgsm | 0.049344 |" in markdown
    # The published block comes after our table, before the next one.
    ours = markdown.index("Table 1 layout")
    assert ours < markdown.index("| none (clean model) |") < markdown.index("Table 2 layout")


@pytest.mark.parametrize("dataset", ["cifar100[test][:10]", "digits[test][:10]"])
def test_eval_md_has_no_published_rows_for_other_data(dataset):
    markdown = format_report(_results(dataset))
    assert "92.64" not in markdown and "0.049344" not in markdown
    assert markdown.count(f"Published numbers are for CIFAR-10 ResNet-32; not shown for {dataset}.") == 2


def _plan():
    return Paper1Plan(models={name: name.split("-")[0] for name in MODELS}, attacks=ATTACKS, eval_dir="/r/eval",
                      published=load_published("paper1"),
                      published_rows={name: name.split("-")[0] for name in MODELS})


def test_report_puts_the_papers_row_beneath_each_of_ours_in_the_papers_setting():
    published = load_published("paper1")["tables"]
    lines = paper1_section(_plan(), _results("x[test][:10]"), "/r", data_name="/d/cifar10_mini_train.npz",
                           model={"name": "resnet32", "options": {"width": 8}})
    text = "\n".join(lines)
    for name in MODELS:
        key = name.split("-")[0]
        row = "| | paper | " + " | ".join(f"{v:.2f}" for v in published["table1"]["rows"][key]) + " |"
        assert f"| {name} | ours | " in text and row in text
        assert text.index(f"| {name} | ours | ") < text.index(row)
    assert "| | paper | 0.049344 | 0.008206 | 0.002801 |" in text
    assert text.count(f"| | paper | {NOT_REPORTED} |") == 3  # Table 2 has no per-fine-tuning figure
    assert "ours: `/d/cifar10_mini_train.npz`, `resnet32` with options {'width': 8}" in text


@pytest.mark.parametrize("data_name, model", [("digits", {"name": "resnet32"}), ("cifar10", {"name": "resnet20"}),
                                              ("cifar100", None)])
def test_report_leaves_the_published_rows_out_of_another_setting(data_name, model):
    text = "\n".join(paper1_section(_plan(), _results("x"), "/r", data_name=data_name, model=model))
    assert "| | paper |" not in text and "92.64" not in text
    assert "Published numbers are for CIFAR-10 ResNet-32; not shown for " in text


def test_paper2_statements_under_the_sweep_with_our_clean_gain():
    published = load_published("paper2")
    plan = Paper1Plan(models={"bn": "bn", "advprop (p=0)": "advprop", "robmask (p=0)": "robmask"},
                      attacks=[], eval_dir="")
    by_model = {"bn": ["bn", 0.9000], "advprop (p=0)": ["advprop (p=0)", 0.9125],
                "robmask (p=0)": ["robmask (p=0)", 0.9200]}
    assert _clean_gain(plan, by_model) == "RobMask − BN +2.00, RobMask − AdvProp +0.75 points at ε = 0"
    lines = paper2_statements(published, plan, by_model, "sweep")
    gain = next(line for line in lines if "1.5" in line)
    assert gain.startswith("- Paper states: RobMask ≈ +1.5 points clean test accuracy over BN and ≈ +0.8 over AdvProp")
    assert "Section 5.2" in gain and "Ours: RobMask − BN +2.00" in gain
    others = "\n".join(paper2_statements(published, plan, by_model, "none"))
    assert "870" in others and "890" in others and "20-epochs training using RobMask" in others


def test_table2_published_figures_stand_only_beside_the_released_codes_measure():
    """The paper's 1 − SSIM figures are the released code's (skimage compare_ssim over the flipped images):
    under the Gaussian convention neither eval.md nor the report prints them, and each says why."""
    gaussian = _results("cifar10[test][:10]", "gaussian")
    markdown = format_report(gaussian)
    assert "0.049344" not in markdown and "92.64" in markdown  # Table 1's rows stay
    assert "released code measures them with `skimage_compare_ssim` (--ssim-convention), this table with " \
           "`gaussian`" in markdown
    text = "\n".join(paper1_section(_plan(), gaussian, "/r", data_name="cifar10", model={"name": "resnet32"}))
    assert "0.049344" not in text and "| | paper | 92.64 |" in text
    assert "measures them with `skimage_compare_ssim`, this table with `gaussian`" in text
    # Under the released convention our flipped-image values (0.7 × the Gaussian ones here) are shown.
    released = "\n".join(paper1_section(_plan(), _results("cifar10"), "/r", data_name="cifar10",
                                         model={"name": "resnet32"}))
    assert "| clean | ours | 0.0070 | 0.0140 | 0.0210 |" in released
    assert "| | paper | 0.049344 | 0.008206 | 0.002801 |" in released


def test_paper1_table2_preset_and_plan_default_to_the_released_measure():
    from tfadv.cli.main import build_parser
    from tfadv.cli.eval_cmd import plan_from_args
    from tfadv.evaluation import preset

    assert preset("paper1_table2")["ssim_convention"] == "skimage_compare_ssim"
    assert preset("paper1_table2")["attacks"] == preset("paper1_table1")["attacks"]
    assert "ssim_convention" not in preset("paper1_table1")
    assert _plan().ssim_convention == "skimage_compare_ssim"
    parser = build_parser()
    plan, _ = plan_from_args(parser.parse_args(["eval", "m", "--preset", "paper1_table2"]))
    assert plan["ssim_convention"] == "skimage_compare_ssim"
    plan, _ = plan_from_args(parser.parse_args(["eval", "m", "--preset", "paper1_table2", "--ssim-convention",
                                                "gaussian"]))
    assert plan["ssim_convention"] == "gaussian"  # the Gaussian convention stays a choice
    plan, _ = plan_from_args(parser.parse_args(["eval", "m"]))
    assert plan["ssim_convention"] == "gaussian"
