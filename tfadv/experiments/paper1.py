"""Paper 1: its Tables 1 and 2 (accuracy and 1 − SSIM under its attacks) and its profile.

Prabhu, Xu, Yap, Whaley, "Understanding Adversarial Robustness Through Loss
Landscape Geometries" (arXiv:1907.09061).

- :class:`Paper1Plan` says which runs form the tables and with which attacks;
  importing this module registers it with the pipeline
  (:func:`tfadv.experiments.sections.register_section`): the evaluation stage
  evaluates it (and draws the perturbation figure of its first model), the
  report stage writes its section (:func:`tfadv.experiments.report.paper1_section`).
- The paper-1 profile: :class:`Paper1Options` (``profile`` ``paper`` or
  ``small``, fine-tuning ``settings`` ``code`` or ``paper``, the landscape
  sizes) → :func:`experiment_configs` (the four runs from
  ``configs/paper1/``, scaled), :func:`settings_from` (every size; :data:`SMALL`
  says why each shortening), :func:`experiment` (the whole
  :class:`~tfadv.experiments.pipeline.Experiment`), :func:`run`.
  ``tools/reproduce_paper1.py`` is its command line.
"""
import dataclasses
import os
from typing import Dict, Optional

from tfadv.experiments.sections import register_section
from tfadv.experiments.profile import ProfileOptions, config_path, data_overrides, load_run_config, scale_note
from tfadv.experiments.report import model_of, paper1_section


@dataclasses.dataclass
class Paper1Plan:
    """Paper 1's Tables 1 and 2: accuracy and 1 − SSIM of four models under the table's attacks.

    Args:
        models: evaluation name → run role, in the tables' row order (the
            clean model first: its examples make the perturbation figure).
        attacks: the tables' attacks in column order (``AttackSpec``\\ s or mappings).
        eval_dir: the evaluation's folder (``eval.json``, ``eval.md``, figures).
        published: the ``paper1`` entry of ``tfadv/evaluation/published_numbers.yaml``
            (title, authors, ``tables.table1``/``table2``), or ``None``: the
            report then prints our rows only. The hook for the paper's numbers.
        published_rows: evaluation name → row key of the published tables.
        ssim_convention: Table 2's SSIM convention; default the
            ``paper1_table2`` preset's, the released code's
            (``tfadv.evaluation.specs.PAPER1_SSIM_CONVENTION``). ``"gaussian"``
            stays a choice; the paper's Table 2 figures are printed only
            beside the released code's convention.
    """

    models: Dict[str, str]
    attacks: list
    eval_dir: str
    published: Optional[dict] = None
    published_rows: Dict[str, str] = dataclasses.field(default_factory=dict)
    ssim_convention: str = dataclasses.field(default_factory=lambda: _table2_preset()["ssim_convention"])


def _table2_preset():
    from tfadv.evaluation import preset

    return preset("paper1_table2")


def evaluate_paper1(plan, experiment, state, say, common):
    """Tables 1 and 2 of ``plan``'s runs; also the perturbation figure of its first model."""
    from tfadv.evaluation import evaluate
    from tfadv.evaluation.plots import plot_perturbations

    say(f"paper 1: Tables 1 and 2 on {len(state.y_test)} test images → {plan.eval_dir}")
    models = {name: state.runs[role].run_dir for name, role in plan.models.items()}
    results = evaluate(models, state.x_test, state.y_test, attacks=plan.attacks, out_dir=plan.eval_dir,
                       ssim_convention=plan.ssim_convention, **common)
    first = next(iter(plan.models))
    state.perturbation_figure = plot_perturbations(
        results, plan.eval_dir, first, os.path.join(plan.eval_dir, f"perturbations-{first}.png"))
    return results


def report_paper1(plan, experiment, state, root):
    if "paper1" not in state.results:
        return []
    return paper1_section(plan, state.results["paper1"], root, state.perturbation_figure,
                          data_name=experiment.data_name, model=model_of(experiment, plan))


register_section(Paper1Plan, "paper1", "paper 1", report_paper1, evaluate_paper1)


# ------------------------------------------------------------------ the paper-1 profile

ROLES = ("clean", "fgsm", "pgd", "stadv")
ATTACK_ORDER = ("fgsm", "pgd", "stadv")  # Table 1's attack columns

SMOKE_OVERRIDES = ["model.name=tiny", "data.batch_size=32", "data.limit_train=128", "data.limit_test=64",
                   "train.epochs=1", "train.verbose=0"]
SMOKE_ATTACK_STEPS = {"pgd": 3, "stadv": 5}  # fine-tuning attacks under smoke

SETTINGS = ("paper", "code")
DEFAULT_SETTINGS = "code"
"""``settings``: the released code's fine-tuning (configs/paper1/*.yaml, issue 19) unless told otherwise."""

PROFILES = ("paper", "small")
"""``profile``: the paper's scale (default) or a CIFAR-10 subset a user can afford on a CPU."""

# profile "small": paper 1's whole protocol on a CIFAR-10 subset (``data``, an .npz) in about half
# an hour on 2 CPU cores (the settings="paper" protocol; the default online released-code
# fine-tuning crafts every epoch and costs several times more). Every setting not named here
# is the configs'; every shortening is named and the reason given:
SMALL = {
    # ResNet-32 keeps the paper's depth (its 15 residual blocks set the landscape's geometry);
    # half the paper's width (8-16-32 channels instead of 16-32-64) costs about 1.6x less per step.
    "model": ["model.name=resnet32", "model.options={width: 8}"],
    # Pretraining with crop + flip augmentation (the clean config's data.augment: true), 15 epochs
    # instead of 200: "until convergence" is out of reach on a CPU; a few thousand images plateau
    # early anyway; the step schedule's milestones scale with it (100, 150 of 200 -> 8, 11 of 15).
    # Fine-tuning: 3 passes over the 1:1 clean + adversarial data instead of the paper's 200
    # (same optimizer and learning rate as the configs).
    "clean_epochs": 15,
    "finetune_epochs": 3,
    # The released code's PGD fine-tuning (settings="code"): 10 Adam steps instead of 100. Adam
    # at 0.01 moves each pixel by about 0.01 per step, so 4 steps reach the 8/255 surface from
    # the image; the other 90 only refine (and cost 10x, every batch of every epoch).
    "pgd_train_steps": 10,
    # stAdv (crafting the stored set and the Table 1 column): 30 Adam steps on the flow instead
    # of 100, the only attack shortened (it costs 10x PGD-10; at 30 steps it is weaker, so its
    # column over-states robustness). FGSM and PGD-10 run exactly as the paper states.
    "stadv_steps": 30,
    "val_limit": 256,      # per-epoch validation (under the run's attack) on 256 held-out images
    "eval_limit": 500,     # Tables 1 and 2 on the first 500 held-out images
    # Landscapes: a 15 x 15 grid over [-1, 1]^2 (the paper's plots: 51 x 51) with the loss on 256
    # training images; sharpness on the same 256 images (20 power iterations, 5 Hutchinson samples).
    "grid": "-1:1:15",
    "examples": 256,
    "hessian_examples": 256,
    "hessian_iterations": 20,
    "hutchinson": 5,
}


@dataclasses.dataclass
class Paper1Options(ProfileOptions):
    """The paper-1 profile's options: :class:`~tfadv.experiments.profile.ProfileOptions` and

    Args:
        profile: ``"paper"`` (the paper's scale) or ``"small"`` (:data:`SMALL`, on ``data``).
        data: the ``.npz`` (keys x, y) the small profile runs on; only with ``profile="small"``.
        settings: fine-tuning as the authors' released code (``"code"``, online)
            or with the paper's evaluation attacks on a stored set (``"paper"``,
            ``configs/paper1/*_evalsettings.yaml``).
        skip_landscape: stop after the evaluation.
        landscape_grid: α and β grid as ``min:max:num`` (default ``-1:1:51``).
        landscape_examples: training images of the landscape loss (default 5000).
        hessian_examples: training images of the Hessian sharpness (default 1000).
        hutchinson_samples: Rademacher samples of the Hessian trace (default 10; 0 skips it).
    """

    profile: str = "paper"
    data: Optional[str] = None
    settings: str = DEFAULT_SETTINGS
    skip_landscape: bool = False
    landscape_grid: Optional[str] = None
    landscape_examples: Optional[int] = None
    hessian_examples: Optional[int] = None
    hutchinson_samples: Optional[int] = None


def model_names(fine_tuning_settings):
    """Names of the four models in eval.json, the tables and landscapes/; the clean model is shared."""
    suffix = "" if fine_tuning_settings == DEFAULT_SETTINGS else f"-{fine_tuning_settings}"
    return {role: "clean" if role == "clean" else f"{role}-finetuned{suffix}" for role in ROLES}


def check_profile(options):
    """``profile="small"`` needs ``data`` (and takes its data from there only)."""
    from tfadv.checks import check_choice

    check_choice("profile", options.profile, PROFILES)
    check_choice("settings", options.settings, SETTINGS)
    if options.profile == "small":
        if not options.data:
            raise ValueError("--profile small needs --data FILE.npz (e.g. a CIFAR-10 subset with keys x, y). "
                             "Received: --data not given")
        if options.source:
            raise ValueError(f"--profile small reads its data from --data; drop --source. "
                             f"Received: --source {options.source!r}")
    elif options.data:
        raise ValueError(f"--data is the small profile's data (use --source with --profile paper). "
                         f"Received: --data {options.data!r} with --profile {options.profile}")


def default_out(profile):
    """The output folder when none is given: ``runs/paper1``, or ``runs/paper1-small``."""
    return "runs/paper1-small" if profile == "small" else "runs/paper1"


def prepare(options):
    """Check the profile's options and fill the default ``out`` (it depends on the profile)."""
    check_profile(options)
    if options.out is None:
        options.out = default_out(options.profile)
    return options


def settings_from(options):
    """Every size the profile uses: the paper's or the small profile's, the smoke test's, or the user's."""
    smoke, small = options.smoke, options.profile == "small"

    def pick(smoke_value, small_value, paper_value):
        return smoke_value if smoke else (small_value if small else paper_value)

    suffix = "" if options.settings == DEFAULT_SETTINGS else f"-{options.settings}"
    return {
        "names": model_names(options.settings),
        "report": f"report{suffix}.md",
        "summary": f"summary{suffix}.json",
        "comparison": f"comparison{suffix}",
        "source": options.data if small else (options.source or ("digits" if smoke else "cifar10")),
        "eval_limit": options.eval_limit or pick(64, SMALL["eval_limit"], None),
        "stadv_eval_steps": pick(5, SMALL["stadv_steps"], None),  # None: stAdv's own default
        "grid": options.landscape_grid or pick("-1:1:5", SMALL["grid"], "-1:1:51"),
        "examples": options.landscape_examples or pick(64, SMALL["examples"], 5000),
        "hessian_examples": options.hessian_examples or pick(64, SMALL["hessian_examples"], 1000),
        "hessian_iterations": pick(5, SMALL["hessian_iterations"], 50),
        "hutchinson": (options.hutchinson_samples if options.hutchinson_samples is not None
                       else pick(2, SMALL["hutchinson"], 10)),
    }


def profile_overrides(options, role):
    """The small profile's config overrides of one run (``role``: clean, fgsm, pgd, stadv); none for paper."""
    if options.profile != "small":
        return []
    overrides = list(SMALL["model"])
    if options.val_limit is None:
        overrides.append(f"data.limit_test={SMALL['val_limit']}")
    if role == "clean":
        return overrides + [f"train.epochs={SMALL['clean_epochs']}"]
    overrides.append(f"train.epochs={SMALL['finetune_epochs']}")
    if role == "stadv":
        overrides.append(f"method.attack.steps={SMALL['stadv_steps']}")
    if role == "pgd" and options.settings == "code":
        overrides.append(f"method.attack.steps={SMALL['pgd_train_steps']}")
    return overrides


def experiment_configs(options, source):
    """The four runs as ``ExperimentConfig``\\ s, by role; fine-tunings start from the clean run in ``out``.

    Each from ``<options.configs>/paper1/`` (default the repository's
    ``configs/``): the clean run's file, and per attack the fine-tuning's
    (``*_evalsettings.yaml`` with ``settings="paper"``).
    """
    common = data_overrides(options, source)
    user = (SMOKE_OVERRIDES if options.smoke else []) + list(options.overrides)
    clean = load_run_config(config_path(options.configs, "paper1", "resnet32_cifar10_clean.yaml"),
                            common + profile_overrides(options, "clean"), options.epochs_scale, user)
    configs = {"clean": clean}
    suffix = "" if options.settings == "code" else "_evalsettings"
    for attack in ATTACK_ORDER:
        overrides = common + profile_overrides(options, attack)
        overrides.append(f"model.init_from={os.path.join(clean.output_dir, clean.name)}")
        if options.smoke and attack in SMOKE_ATTACK_STEPS:
            overrides.append(f"method.attack.steps={SMOKE_ATTACK_STEPS[attack]}")
        path = config_path(options.configs, "paper1", f"resnet32_cifar10_finetune_{attack}{suffix}.yaml")
        configs[attack] = load_run_config(path, overrides, options.epochs_scale, user)
    return configs


def small_profile_note(options, settings):
    """The report's sentence on what the small profile shortened (nothing for the paper profile)."""
    if options.profile != "small":
        return []
    if options.smoke:
        return ["**Profile small under --smoke**: the small profile's data (`--data`), the smoke test's sizes."]
    return [f"**Profile small** (`--profile small`): ResNet-32 at half width (8-16-32 channels), "
            f"{SMALL['clean_epochs']} pretraining epochs with crop + flip augmentation, "
            f"{SMALL['finetune_epochs']} fine-tuning epochs on the 1:1 set"
            + (f", PGD fine-tuning with {SMALL['pgd_train_steps']} Adam steps (the released code: 100)"
               if options.settings == "code" else "") + ", stAdv with "
            f"{SMALL['stadv_steps']} steps (training and evaluation; the released code's 100), "
            f"Tables 1-2 on at most {settings['eval_limit']} held-out images, landscapes on a {settings['grid']} grid "
            f"over {settings['examples']} training images; everything else as the configs "
            "(tfadv/experiments/paper1.py, SMALL, says why each was chosen)."]


def landscape_note(published):
    """Under the sharpness table: the paper gives no numbers, only the order it states (quoted)."""
    from tfadv.experiments.published import NOT_FOUND, statement_line

    lines = [statement_line(s) for s in published.get("statements", []) if s.get("under") == "landscapes"]
    return " ".join(lines) or f"Published sharpness values: {NOT_FOUND}."


def table1_attacks(settings):
    """FGSM 8/255, PGD-10 at 1/255 (step ε/4, random start), stAdv (``tfadv.evaluation`` preset)."""
    from tfadv.evaluation import preset

    attacks = preset("paper1_table1")["attacks"]
    if settings["stadv_eval_steps"] is not None:
        attacks = [dataclasses.replace(a, steps=settings["stadv_eval_steps"]) if a.name == "stadv" else a
                   for a in attacks]
    return attacks


def experiment(options):
    """The paper-1 profile of the experiment pipeline: runs, Table 1/2 evaluation, landscapes, report.

    ``options`` (:class:`Paper1Options`) is checked and its ``out`` filled
    (:func:`prepare`) first.
    """
    from tfadv.experiments.pipeline import Experiment, LandscapePlan
    from tfadv.experiments.published import load_published

    prepare(options)
    settings = settings_from(options)
    configs = experiment_configs(options, settings["source"])
    names = settings["names"]
    epochs = ", ".join(f"{role} {configs[role].train.epochs}" for role in ROLES)
    published = load_published("paper1")
    scale = scale_note(options, epochs)
    if options.profile == "small" and not options.smoke:
        scale = "--profile small (below), not the paper's" + ("" if scale.startswith("the paper's") else "; " + scale)
    return Experiment(
        tag="paper1",
        title="Paper 1 reproduction: loss-landscape geometry of adversarially fine-tuned models",
        out_dir=options.out,
        runs=configs,
        data_name=settings["source"],
        eval_limit=settings["eval_limit"],
        eval_batch_size=options.eval_batch_size,
        plans=[Paper1Plan(
            models={names[role]: role for role in ROLES}, attacks=table1_attacks(settings),
            eval_dir=os.path.join(options.out, "eval"), published=published,
            published_rows={names[role]: role for role in ROLES})],
        landscape=LandscapePlan(
            models={names[role]: role for role in ROLES}, out_dir=os.path.join(options.out, "landscapes"),
            grid=settings["grid"], examples=settings["examples"], hessian_examples=settings["hessian_examples"],
            hessian_max_iterations=settings["hessian_iterations"], hutchinson_samples=settings["hutchinson"],
            comparison=settings["comparison"],
            note=landscape_note(published)),
        skipped={"landscape": "--skip-landscape"} if options.skip_landscape else {},
        intro=[f"Data `{settings['source']}`; model `{configs['clean'].model.name}`; fine-tuning settings "
               f"**{options.settings}** "
               f"({'as stated in the paper' if options.settings == 'paper' else 'of the authors’ released code'}); "
               f"epochs: {epochs}. Scale: {scale}. The configs' comments say which "
               "settings the paper states and which are our choice."] + small_profile_note(options, settings),
        report_file=settings["report"],
        summary_file=settings["summary"],
        summary={"paper": "1907.09061", "settings": options.settings},
    )


def run(options):
    """Build the paper-1 :func:`experiment` of ``options`` and run it (resumable); its results."""
    from tfadv.experiments.pipeline import run_experiment

    return run_experiment(experiment(options))
