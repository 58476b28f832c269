"""The experiment pipeline (tfadv.experiments): the quickstart profile, the stages on a tiny
experiment (training, paper-2 evaluation, export, report), the composite perturbation figure.
The paper-1 and paper-2 profiles run end to end in tests/test_tools.py."""
import json
import os

import numpy as np
import pytest

from tfadv.config import load_config
from tfadv.evaluation import pgd_sweep
from tfadv.evaluation.plots import plot_perturbation_rows
from tfadv.evaluation.results import decode_mask
from tfadv.experiments import STAGES, Experiment, ExportPlan, Paper2Plan, quickstart_experiment, run_experiment


def test_quickstart_profile_is_both_papers_shortened_with_the_report_in_runs_quickstart(tmp_path):
    experiment = quickstart_experiment(data="digits", out=str(tmp_path), epochs=2, eval_limit=50)
    root = os.path.join(str(tmp_path), "quickstart")
    assert experiment.report_path == os.path.join(root, "report.md")
    assert list(experiment.runs) == ["clean", "fgsm", "pgd", "stadv", "advprop", "robmask"]
    assert all(c.output_dir == root and c.model.name == "resnet20" for c in experiment.runs.values())
    assert experiment.runs["clean"].train.epochs == 2
    for attack in ("fgsm", "pgd", "stadv"):
        config = experiment.runs[attack]
        assert config.method.kind == "finetune" and config.method.attack.name == attack
        assert config.model.init_from == os.path.join(root, "clean")
    assert list(experiment.plan("paper1").models.values()) == ["clean", "fgsm", "pgd", "stadv"]
    assert list(experiment.plan("paper2").models.values()) == ["clean", "advprop", "robmask"]
    assert experiment.export.role == "robmask" and experiment.eval_limit == 50
    assert [stage.name for stage in STAGES] == ["train", "evaluate", "landscape", "export", "report"]


@pytest.fixture(scope="module")
def tiny_experiment(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("experiment"))
    common = {"output_dir": out, "data": {"limit_train": 64, "limit_test": 32, "batch_size": 32, "augment": False},
              "train": {"epochs": 1, "verbose": 0}}
    runs = {
        "bn": load_config(data={"name": "bn", "model": {"name": "tiny"}, **common}),
        "robmask": load_config(data={"name": "robmask", "model": {"name": "tiny", "norm": "robmask"},
                                     "method": {"kind": "robmask", "eps_max": "8/255", "pgd_steps": 1,
                                                "attack": {"name": "pgd", "eps": "8/255", "steps": 1}},
                                     **common}),
    }
    experiment = Experiment(
        tag="tiny", title="Tiny experiment", out_dir=os.path.join(out, "report"), runs=runs, data_name="digits",
        eval_limit=16, eval_batch_size=16,
        plans=[Paper2Plan(models={"bn": "bn", "robmask": "robmask"},
                          sweep=pgd_sweep(eps_values=["0", "4/255"], steps=2), p_grid=[0.0, 1.0],
                          tradeoff_attack=pgd_sweep(eps_values=["4/255"], steps=2)[0],
                          eval_dir=os.path.join(out, "report", "eval"))],
        export=ExportPlan(role="robmask", out_dir=os.path.join(out, "export"), query_examples=4),
        intro=["A tiny test."], summary={"kind": "test"})
    state = run_experiment(experiment)
    return experiment, state


def test_pipeline_stages_report_and_summary(tiny_experiment):
    experiment, state = tiny_experiment
    report = open(experiment.report_path, encoding="utf-8").read()
    # One section per paper, no embedded eval.md headings, no per-model image grids.
    assert report.count("## Paper 2") == 1 and "## Paper 1" not in report
    assert "Robustness evaluation" not in report and "grid-" not in report
    assert "#### Trade-off over the masking strength p — robmask" in report
    assert "## Loss landscapes" not in report  # no landscape plan
    summary = json.load(open(os.path.join(experiment.out_dir, "summary.json"), encoding="utf-8"))
    assert summary["kind"] == "test" and set(summary["stage_seconds"]) == {"train", "evaluate", "export", "report"}
    assert summary["runs"] == {role: os.path.join(experiment.runs[role].output_dir, role) for role in ("bn", "robmask")}
    # The sweep table's numbers are the evaluation's, as percentages.
    results = state.results["paper2"]
    ours = {}
    for line in report.split("### Accuracy (%) under", 1)[1].split("\n### ", 1)[0].splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) > 2 and cells[1] == "ours":
            ours[cells[0]] = cells[2:]
    for name, label in (("bn", "bn"), ("robmask", "robmask (p=0)")):
        record = results["models"][name]
        p = None if name == "bn" else 0.0
        expected = [f"{100 * decode_mask(part['correct']).mean():.2f}" for attack_id in results["plan"]["sweep"]
                    for part in record["parts"].values() if part["attack_id"] == attack_id and part["p"] == p]
        assert ours[label] == expected


def test_export_stage_predictions_match_the_keras_model(tiny_experiment):
    from tfadv.experiments import load_test_arrays
    from tfadv.models import load_model
    from tfadv.models.conditioning import condition_inputs

    experiment, state = tiny_experiment
    x, y = load_test_arrays(experiment.runs["robmask"].data, 4)
    model = load_model(state.runs["robmask"].run_dir)
    for p in (0.0, 1.0):
        expected = np.argmax(model(condition_inputs(x, p), training=False), axis=1).tolist()
        assert state.predictions[p] == expected
    report = open(experiment.report_path, encoding="utf-8").read()
    assert f"| 1 | {state.predictions[1.0]} | {y.tolist()} |" in report


def test_rerun_skips_finished_work(tiny_experiment, capsys):
    experiment, _ = tiny_experiment
    capsys.readouterr()
    run_experiment(experiment)
    printed = capsys.readouterr().out
    assert printed.count("finished, reused") == 2
    assert printed.count("stored, skipped") == 3 + 4  # bn: clean + 2 sweep; robmask: + the trade-off at p = 1


def test_perturbation_figure_needs_rows_of_equal_length(tmp_path):
    x = np.random.default_rng(0).uniform(size=(3, 8, 8, 1)).astype("float32")
    path = plot_perturbation_rows([("A", x, x, None, None), ("B", x, np.clip(x + 0.1, 0, 1), [1, 2, 3], [1, 0, 3])],
                                  str(tmp_path / "p.png"))
    assert os.path.getsize(path) > 0
    with pytest.raises(ValueError, match="same number of examples"):
        plot_perturbation_rows([("A", x, x, None, None), ("B", x[:2], x[:2], None, None)], str(tmp_path / "q.png"))
    with pytest.raises(ValueError, match="rows"):
        plot_perturbation_rows([], str(tmp_path / "r.png"))


# ---------------------------------------------------------------- paper 2: Table 1, masking interpolation, Figure 3

FGSM_8 = {"name": "fgsm", "eps": "8/255"}


def _fgsm_accuracies(model_fn, x, y, eps=8 / 255):
    """Clean and FGSM accuracy computed here, with NumPy and one GradientTape (not tfadv's attack)."""
    import tensorflow as tf

    images = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(images)
        logits = model_fn(images)
        loss = tf.keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    x_adv = np.clip(x + eps * np.sign(tape.gradient(loss, images).numpy()), 0, 1).astype("float32")
    clean = float(np.mean(np.argmax(logits.numpy(), axis=1) == y))
    robust = float(np.mean(np.argmax(model_fn(tf.constant(x_adv)).numpy(), axis=1) == y))
    return clean, robust


@pytest.fixture(scope="module")
def masking_experiment(tmp_path_factory):
    from tfadv.experiments import CurvesPlan, MaskingBlock, MaskingPlan

    out = str(tmp_path_factory.mktemp("masking"))
    common = {"output_dir": out, "data": {"limit_train": 64, "limit_test": 32, "batch_size": 32, "augment": False},
              "train": {"epochs": 1, "verbose": 0}, "model": {"name": "tiny"}}

    def config(name, **method):
        tree = dict(common, name=name)
        if "init_from" in method:
            tree["model"] = {"name": "tiny", "init_from": os.path.join(out, method.pop("init_from"))}
        tree["method"] = {"attack": FGSM_8, **method}
        return load_config(data=tree)

    runs = {
        "standard": config("standard"),
        "robust": config("robust", kind="adversarial"),
        "standard_ft": config("standard-ft", kind="bn_finetune", train_on="adversarial", init_from="standard"),
        "robust_ft": config("robust-ft", kind="bn_finetune", train_on="clean", init_from="robust"),
    }
    experiment = Experiment(
        tag="masking", title="Masking", out_dir=os.path.join(out, "report"), runs=runs, data_name="digits",
        eval_limit=24, eval_batch_size=24,
        plans=[MaskingPlan(blocks=[MaskingBlock("Standard", "standard", "standard_ft", "adversarial"),
                                   MaskingBlock("Robust", "robust", "robust_ft", "clean")],
                           attack=FGSM_8, p_grid=[0.0, 0.5, 1.0], eval_dir=os.path.join(out, "report", "table1")),
               CurvesPlan(runs={"standard": "standard", "robust": "robust"},
                          path=os.path.join(out, "report", "curves.png"))])
    state = run_experiment(experiment)
    return experiment, state


def test_table1_rows_and_interpolation_end_points_equal_an_independent_evaluation(masking_experiment):
    from tfadv.experiments import load_test_arrays
    from tfadv.experiments.paper2 import interpolation_curves, table1_rows
    from tfadv.models import load_model
    from tfadv.models.conditioning import condition_inputs

    experiment, state = masking_experiment
    plan, results = experiment.plan("masking"), state.results["masking"]
    x, y = load_test_arrays(experiment.runs["standard"].data, 24)
    independent = {role: _fgsm_accuracies(lambda images, m=load_model(state.runs[role].run_dir): m(images, training=False),
                                          x, y)
                   for role in experiment.runs}
    rows = table1_rows(plan, results)
    assert [row[1] for row in rows] == ["Standard", "Standard + BN-only fine-tuning on adversarial images",
                                        "Robust", "Robust + BN-only fine-tuning on clean images"]
    for (_, _, clean, robust), role in zip(rows, ("standard", "standard_ft", "robust", "robust_ft")):
        assert (clean, robust) == pytest.approx(independent[role], abs=1e-9)
    # p = 0 is the clean masking (the standard model; the robust model's clean fine-tuning), p = 1 the robust one.
    curves = interpolation_curves(plan, results)
    for title, (clean_role, robust_role) in (("Standard", ("standard", "standard_ft")),
                                            ("Robust", ("robust_ft", "robust"))):
        (p0, *_), (p1, *_) = curves[title][0], curves[title][-1]
        assert (p0, p1) == (0.0, 1.0)
        assert curves[title][0][1:] == pytest.approx(independent[clean_role], abs=1e-9)
        assert curves[title][-1][1:] == pytest.approx(independent[robust_role], abs=1e-9)
    # The middle of the curve is the interpolation model at p = 0.5, evaluated here independently.
    from tfadv.experiments.paper2 import interpolation_models

    middle = interpolation_models(plan, {role: run.run_dir for role, run in state.runs.items()})["Standard: interpolation"]
    expected = _fgsm_accuracies(lambda images: middle(condition_inputs(images, 0.5), training=False), x, y)
    assert curves["Standard"][1][1:] == pytest.approx(expected, abs=1e-9)
    # BN-only fine-tuning updated the moving statistics (so 'fold' is needed) and left every other weight.
    changes = state.masking["blocks"]["Standard"]["bn_changes"]
    assert state.masking["statistics"] == "fold" and changes["mean"]["max"] > 0 and changes["gamma"]["max"] > 0
    assert json.load(open(os.path.join(plan.eval_dir, "masking.json"), encoding="utf-8")) == json.loads(
        json.dumps(state.masking))


def test_masking_report_section_and_training_curves(masking_experiment):
    from tfadv.analysis import read_history

    experiment, state = masking_experiment
    report = open(experiment.report_path, encoding="utf-8").read()
    section = report.split("### Table 1", 1)[1].split("\n### ", 1)[0]
    results = state.results["masking"]
    for block in experiment.plan("masking").blocks:
        for name in (block.source_name, block.finetuned_name):
            parts = results["models"][name]["parts"]
            clean, robust = (100 * decode_mask(parts[key]["correct"]).mean() for key in
                             ("clean", results["plan"]["attacks"][0]))
            assert f"| {name} | {clean:.2f} | {robust:.2f} |" in section
    assert 'statistics="fold"' in report and "![masking interpolation](table1/tradeoff.png)" in report
    assert "![training curves](curves.png)" in report and os.path.getsize(experiment.plan("curves").path) > 0
    assert len(read_history(state.runs["robust"].run_dir)["val_accuracy"]) == 1


def test_papers_register_their_sections_and_the_pipeline_names_no_paper():
    import inspect

    from tfadv.experiments import SECTIONS, AblationPlan, Paper1Plan, pipeline, register_section

    assert {section.key for section in SECTIONS.values()} >= {"paper1", "paper2", "masking", "ablations", "curves"}
    assert SECTIONS[Paper1Plan].key == "paper1" and SECTIONS[AblationPlan].label == "paper 2 ablations"
    source = inspect.getsource(pipeline)
    assert "import paper" not in source and "Paper1Plan(" not in source and "paper2." not in source

    class OtherPaper:  # a third paper: one registration, no change to the pipeline
        eval_dir = "x"

    with pytest.raises(ValueError, match="No section is registered for OtherPaper"):
        Experiment(tag="t", title="t", out_dir="o", runs={}, data_name="d", plans=[OtherPaper()])
    register_section(OtherPaper, "other", "another paper", lambda plan, experiment, state, root: ["## Other"])
    try:
        experiment = Experiment(tag="t", title="t", out_dir="o", runs={}, data_name="d", plans=[OtherPaper()])
        assert experiment.plan("other") is experiment.plans[0] and experiment.plan("paper1") is None
        with pytest.raises(ValueError, match="key 'paper1' is already registered"):
            register_section(type("Clash", (), {}), "paper1", "clash", lambda *a: [])
    finally:
        del SECTIONS[OtherPaper]
