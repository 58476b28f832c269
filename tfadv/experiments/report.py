"""``report.md`` of an experiment, laid out like a paper's results section.

One section per paper plan (each paper's module registers how its plans are
reported: :mod:`tfadv.experiments.paper1`, :mod:`tfadv.experiments.paper2`) with its tables (the published numbers beneath ours
when the experiment carries them) and its figures: for paper 1 one composite
figure of example perturbations per attack; then the loss landscapes and
their sharpness together; then the export. Every number in a table comes from
the evaluation's ``eval.json`` (``eval.md`` beside it has every column, e.g.
the worst case and 1 − SSIM over all images).
"""
import os

from tfadv.experiments.published import (
    NOT_FOUND,
    NOT_REPORTED,
    comparison_table,
    in_setting,
    not_shown_note,
    paper_citation,
    published_row,
    setting_label,
    source_line,
    statement_line,
)
from tfadv.experiments.sections import section_of
from tfadv.records import revision_label, source_revision, write_text

NO_PUBLISHED = ("The papers' published numbers are for CIFAR at the papers' scale; the reproduction "
                "drivers in tools/ print them beneath their results.")


def runs_table(results, root):
    """A Markdown table of training runs: linked folder, method, epochs, final validation accuracies.

    Args:
        results: ``RunResult``s (``run_dir`` and ``history``).
        root: the folder the report is written in (links are relative to it).
    """
    import yaml

    lines = ["| run | method | epochs | val accuracy (%) | val robust accuracy (%) |", "|---|---|---:|---:|---:|"]
    for result in results:
        with open(os.path.join(result.run_dir, "config.yaml"), encoding="utf-8") as handle:
            method = (yaml.safe_load(handle) or {}).get("method", {}).get("kind", "standard")
        last = result.history[-1] if result.history else {}

        def percent(key):
            value = last.get(key)
            return "–" if value in (None, "") else f"{100 * float(value):.2f}"

        name = os.path.basename(result.run_dir)
        lines.append(f"| [{name}]({os.path.relpath(result.run_dir, root)}) | {method} | "
                     f"{len(result.history)} | {percent('val_accuracy')} | {percent('val_robust_accuracy')} |")
    return "\n".join(lines)


def _link(target, root):
    return os.path.relpath(target, root).replace(os.sep, "/")


def _published_table(published, key):
    return None if published is None else published["tables"][key]


def _row(table, key):
    return None if table is None or key is None else published_row(table, key)


def _missing(table):
    """The ``paper`` row's text for a model the published table has no row for."""
    return NOT_REPORTED if table is not None and table.get("rows") else NOT_FOUND


def _setting_lines(table, data_name, model=None):
    """Why the published rows are absent (other data or model), or how this run differs from the paper's scale."""
    architecture = None if model is None else model.get("name")
    if not in_setting(table, data_name, architecture):
        shown = data_name if architecture is None else f"{data_name} with {architecture}"
        return False, [not_shown_note(table.get("setting") or {}, shown), ""]
    ours = f"`{data_name}`" + ("" if model is None else f", `{architecture}` with options {model.get('options') or {}}")
    return True, [f"The paper's rows are {setting_label(table.get('setting') or {})} at the paper's scale; ours: "
                  f"{ours}, at the scale stated above. Compare directions (which model is more accurate or "
                  "robust, which attack perturbs more), not values.", ""]


def paper1_section(plan, results, root, perturbation_figure=None, data_name=None, model=None):
    """Tables 1 and 2 of paper 1 (ours, the published rows beneath) and the perturbation figure.

    The published rows appear only for results in the paper's setting:
    CIFAR-10 data (judged by ``data_name``, default the evaluated data's
    name) and, when ``model`` (the runs' ``model`` config: ``name``,
    ``options``) is given, a ResNet-32; otherwise one sentence says why not.
    """
    from tfadv.evaluation import accuracy_table, ssim_table

    from tfadv.evaluation.specs import PAPER1_SSIM_CONVENTION

    published = plan.published
    table1, table2 = _published_table(published, "table1"), _published_table(published, "table2")
    convention = (results.get("plan") or {}).get("ssim_convention") or "gaussian"
    table2_matches = convention == PAPER1_SSIM_CONVENTION  # the paper's figures beside their own measure only
    setting_lines = []
    if published is not None:
        data_name = data_name or results.get("dataset", {}).get("name")
        shown, setting_lines = _setting_lines(table1, data_name, model)
        if not shown:
            published = None
    ours = accuracy_table(results)
    attacks = len(results["plan"]["attacks"])
    labels = ours.header[1:2 + attacks]  # Clean and the attacks, without the worst case (in eval.md)
    accuracy = {name: row[1:] for name, row in zip(results["models"], ours.rows)}
    distance = {name: row[1:] for name, row in zip(results["models"], ssim_table(results).rows)}
    rows1, rows2 = [], []
    for name in plan.models:
        key = plan.published_rows.get(name)
        rows1.append((name, [None if v is None else 100 * v for v in accuracy[name][: 1 + attacks]],
                      _row(table1, key)))
        # 1 − SSIM over the examples the attack fooled (the "(flipped)" columns of eval.md).
        rows2.append((name, distance[name][0::2], _row(table2, key) if table2_matches else None))
    with_published = published is not None
    eval_md = _link(os.path.join(plan.eval_dir, "eval.md"), root)
    lines = ["## Paper 1: loss-landscape geometry of adversarially fine-tuned models", ""]
    if plan.published is not None:
        lines += [f"Paper: {paper_citation(plan.published)}.", ""] + setting_lines
    lines += ["### Table 1: top-1 test accuracy (%)", "",
              comparison_table(labels, rows1, "percent", with_published, missing=_missing(table1)), ""]
    if with_published:
        lines += [source_line(table1), ""]
    lines += ["### Table 2: mean 1 − SSIM(adversarial, clean)", "",
              f"Over the test images whose prediction the attack changed (the released code's \"successful\" "
              f"attacks), SSIM convention `{convention}`; the mean over all images and "
              f"the worst case over the attacks are in [{eval_md}]({eval_md}).", "",
              comparison_table(labels[1:], rows2, "distance", with_published and table2_matches,
                               missing=_missing(table2)), ""]
    if with_published and table2_matches:
        lines += [source_line(table2) + " The paper gives one figure per attack (\"Data Augmented with\"); "
                  "the released code measures it over the successful attacks of each attack "
                  "(mister_ed `avg_successful_ssim`, scikit-image `compare_ssim(..., multichannel=True)` on "
                  "float images), so it stands beneath our clean model's row.", ""]
    elif with_published:
        lines += [f"The paper's Table 2 figures are not shown: the released code measures them with "
                  f"`{PAPER1_SSIM_CONVENTION}`, this table with `{convention}`.", ""]
    if perturbation_figure:
        first = next(iter(plan.models))
        lines += ["### Example perturbations", "",
                  f"Test images of the `{first}` model under each attack: clean, adversarial (true → "
                  "predicted label) and the perturbation stretched to fill the grey scale (grey = 0).", "",
                  f"![perturbations per attack]({_link(perturbation_figure, root)})", ""]
    return lines


def _clean_gain(plan, by_model):
    """``RobMask − BN +x.xx, RobMask − AdvProp +y.yy points`` from our ε = 0 column, or None."""
    clean = {plan.models[name]: row[1] for name, row in by_model.items() if name in plan.models}
    if clean.get("robmask") is None:
        return None
    parts = [f"RobMask − {label} {100 * (clean['robmask'] - clean[role]):+.2f}"
             for role, label in (("bn", "BN"), ("advprop", "AdvProp")) if clean.get(role) is not None]
    return (", ".join(parts) + " points at ε = 0") if parts else None


def paper2_statements(published, plan, by_model, under):
    """The "Paper states" lines of paper 2's statements printed under ``under`` (``sweep`` or ``none``)."""
    lines = []
    for statement in published.get("statements") or []:
        if statement.get("under") != under:
            continue
        ours = _clean_gain(plan, by_model) if statement["key"] == "clean_gain_100ep" else None
        setting = statement.get("setting") or {}
        label = ", ".join(f"{key} {value}" for key, value in setting.items())
        lines += [f"- {statement_line(statement, ours)} (setting: {label})"]
    return lines + [""] if lines else []


def paper2_section(plan, results, root, data_name=None, model=None):
    """Paper 2's ε sweep (ours, the published rows beneath, the paper's statements) and the trade-off over p.

    Published rows and statements appear only for CIFAR-10 data (``data_name``,
    default the evaluated data's name); otherwise one sentence says why not.
    """
    from tfadv.evaluation import sweep_table, tradeoff_tables

    published = plan.published
    table = _published_table(published, "sweep")
    setting_lines = []
    if published is not None:
        data_name = data_name or results.get("dataset", {}).get("name")
        # The sweep's rows are keyed by architecture already; the setting check is the data's.
        shown, setting_lines = _setting_lines(table, data_name)
        if not shown:
            published = None
    ours = sweep_table(results)
    by_model = {name: row for name, row in zip(results["models"], ours.rows)}
    rows = [(by_model[name][0], [None if v is None else 100 * v for v in by_model[name][1:]],
             _row(table, plan.published_rows.get(name)))
            for name in plan.models]
    with_published = published is not None
    eval_dir = _link(plan.eval_dir, root)
    lines = ["## Paper 2: adversarial masking and the robustness trade-off", ""]
    if plan.published is not None:
        lines += [f"Paper: {paper_citation(plan.published)}.", ""] + setting_lines
    lines += [f"### {ours.title.split(' — ')[0]} (Table 5 layout)", "",
              "Conditioned models (AdvProp, RobMask) at the masking strength in brackets.", "",
              comparison_table(ours.header[1:], rows, "percent", with_published, missing=_missing(table)), ""]
    if with_published:
        lines += [source_line(table), ""] + paper2_statements(published, plan, by_model, "sweep")
    lines += [f"![accuracy vs ε]({eval_dir}/accuracy_vs_eps.png)", "",
              "### The trade-off over the masking strength p", "",
              "Clean and robust accuracy of the conditioned models at each p (RobMask: ε = p · ε_max "
              "masking; AdvProp: outputs of the main and auxiliary BN mixed linearly)."
              + (" Published numbers for this curve: not found in the sources available here."
                 if with_published else ""), ""]
    for tradeoff in tradeoff_tables(results):
        lines += [tradeoff.markdown().replace("### ", "#### ", 1), ""]
    if "tradeoff.png" in results.get("figures", []):
        lines += [f"![trade-off]({eval_dir}/tradeoff.png)", ""]
    others = paper2_statements(published, plan, by_model, "none") if with_published else []
    if others:
        lines += ["### What else the paper states (not measured by this report)", ""] + others
    return lines


def landscape_section(plan, figures, sharpness, root):
    """The side-by-side landscape figures and the sharpness table, in one place."""
    from tfadv.landscape import sharpness_table

    folder = _link(plan.out_dir, root)
    lines = ["## Loss landscapes and sharpness", "",
             f"2-D filter-normalized loss landscapes on one colour scale: grid {plan.grid} in both "
             f"directions, loss on the first {plan.examples} training images (fewer if the training set "
             f"is smaller); per-model surfaces, plots and VTK files in [{folder}/]({folder}/).", ""]
    lines += [f"![{kind}]({_link(figure, root)})" for kind, figure in figures.items()]
    lines += ["", "Sharpness of each model's training loss (top Hessian eigenvalue, Hutchinson trace):", "",
              sharpness_table(sharpness)]
    if plan.note:
        lines += [plan.note, ""]
    return lines


def export_section(plan, export_dir, predictions, labels):
    lines = ["## Export", "",
             f"`{plan.role}` exported to `{export_dir}` (see export/README.md). Predictions of "
             f"`serve_tradeoff` for the first {plan.query_examples} test images, loaded with "
             "`tf.saved_model.load`:", "",
             "| p | predictions | labels |", "|---|---|---|"]
    lines += [f"| {p:g} | {predicted} | {labels} |" for p, predicted in predictions.items()]
    return lines + [""]


def model_of(experiment, plan):
    """The ``model`` section (name, options) of the plan's first run, for the published rows' setting check."""
    role = next(iter(plan.models.values()))
    model = experiment.runs[role].model
    return {"name": model.name, "options": dict(model.options or {})}


def write_report(experiment, state):
    """Write ``experiment.report_path`` from what the stages produced (``state``)."""
    root = experiment.out_dir
    tested = "" if state.y_test is None else f" Evaluated on the first {len(state.y_test)} test images."
    times = ", ".join(f"{name} {seconds / 60:.1f}" for name, seconds in state.stage_seconds.items())

    published = [plan for plan in experiment.plans if hasattr(plan, "published")]
    unpublished = " " + NO_PUBLISHED if any(plan.published is None for plan in published) else ""
    lines = [f"# {experiment.title}", "",
             " ".join(experiment.intro) + unpublished + tested
             + f" Total time of this call {state.seconds / 60:.1f} min ({times} min). Code: "
             f"{revision_label(source_revision())}. Every run folder holds its resolved `config.yaml` "
             "and `revision.json` (the code that made it, and any other that resumed it).", "",
             "## Runs", "", runs_table(list(state.runs.values()), root), ""]
    for plan in experiment.plans:  # the papers' sections, as their modules registered them
        lines += section_of(plan).report(plan, experiment, state, root)
    if experiment.landscape is not None:
        if state.landscape_figures is None:
            reason = experiment.skipped.get("landscape", "not computed")
            lines += ["## Loss landscapes and sharpness", "", f"Skipped ({reason}).", ""]
        else:
            lines += landscape_section(experiment.landscape, state.landscape_figures, state.sharpness, root)
    if state.predictions is not None:
        labels = state.y_test[: experiment.export.query_examples].tolist()
        lines += export_section(experiment.export, state.export_dir, state.predictions, labels)
    evaluations = [experiment.plan(key).eval_dir for key in state.results]
    if evaluations:
        links = ", ".join(f"[{_link(d, root)}/eval.json]({_link(d, root)}/eval.json)" for d in evaluations)
        lines += [f"Every number with its settings: {links} (and `eval.md` beside each).", ""]
    write_text(experiment.report_path, "\n".join(lines).rstrip("\n") + "\n")
    return experiment.report_path
